/** Pieces the OpenAPI path modules share. */

/** A 2xx response with a JSON body of this schema. */
export const ok = (schema: object) => ({ description: 'ok', content: { 'application/json': { schema } } });

/** An error response (the body is the usual `{ error: { code, message } }`). */
export const err = { description: 'error' };

/** The `{ref}` path parameter of the agent routes. */
export const agentRef = {
  name: 'ref',
  in: 'path',
  required: true,
  description: 'agent id or name',
  schema: { type: 'string' },
};
