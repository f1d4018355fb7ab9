import { describe, expect, it } from 'vitest';
import { definitionHash, diffSnapshot, pinSnapshot } from './pins.js';
import type { ServerSnapshot } from './types.js';

const weather = {
  name: 'get_weather',
  description: 'Weather for a city.',
  inputSchema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } },
  annotations: { readOnlyHint: true },
};
const snapshot = (tools = [weather], instructions?: string): ServerSnapshot => ({
  name: 'w',
  serverInfo: { name: 'w', version: '1' },
  ...(instructions ? { instructions } : {}),
  tools,
  prompts: [],
  resources: [{ uri: 'file:///a', name: 'a' }],
  resourceTemplates: [],
});

describe('definition hashes (RFC 8785)', () => {
  it('do not change when keys are reordered or numbers re-serialised', () => {
    const reordered = JSON.parse(
      '{"annotations":{"readOnlyHint":true},"inputSchema":{"properties":{"days":{"type":"integer"},"city":{"type":"string"}},"type":"object"},"description":"Weather for a city.","name":"get_weather"}',
    );
    expect(definitionHash(reordered, 'tool')).toBe(definitionHash(weather, 'tool'));
    expect(
      definitionHash({ ...weather, inputSchema: { ...weather.inputSchema, maximum: 1.0 } }, 'tool'),
    ).toBe(definitionHash({ ...weather, inputSchema: { ...weather.inputSchema, maximum: 1 } }, 'tool'));
  });
  it('change with the description, the schema or the annotations, but not with _meta', () => {
    const base = definitionHash(weather, 'tool');
    expect(definitionHash({ ...weather, description: 'Weather for a city!' }, 'tool')).not.toBe(base);
    expect(definitionHash({ ...weather, annotations: { readOnlyHint: false } }, 'tool')).not.toBe(base);
    expect(definitionHash({ ...weather, _meta: { x: 1 } }, 'tool')).toBe(base);
  });
});

describe('diffSnapshot', () => {
  const pins = pinSnapshot(snapshot([weather], 'Be nice.'), new Date(0), 'test');
  it('finds nothing when only the order changed', () => {
    expect(diffSnapshot(pins, snapshot([{ ...weather }], 'Be nice.'))).toEqual([]);
  });
  it('reports a changed, an added, a renamed (removed and added) tool and changed instructions', () => {
    const drift = diffSnapshot(
      pins,
      snapshot(
        [
          { ...weather, name: 'get_forecast' },
          { ...weather, name: 'extra' },
        ],
        'Be nicer.',
      ),
    );
    expect(drift.map((d) => `${d.change} ${d.kind} ${d.key}`).sort()).toEqual([
      'added tool extra',
      'added tool get_forecast',
      'changed instructions w',
      'removed tool get_weather',
    ]);
    const changed = diffSnapshot(pins, snapshot([{ ...weather, description: 'x' }], 'Be nice.'));
    expect(changed).toHaveLength(1);
    expect(changed[0]?.pinned?.definition.description).toBe('Weather for a city.');
    expect(changed[0]?.current?.definition.description).toBe('x');
  });
});
