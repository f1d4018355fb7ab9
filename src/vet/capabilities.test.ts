import { describe, expect, it } from 'vitest';
import { classifyTool, toxicFlows } from './capabilities.js';
import type { Json, ServerSnapshot } from './types.js';

const snap = (name: string, tools: Json[]): ServerSnapshot => ({
  name,
  serverInfo: {},
  tools,
  prompts: [],
  resources: [],
  resourceTemplates: [],
});

describe('capabilities and toxic flows', () => {
  const mail = snap('mail', [
    { name: 'read_email', description: 'Read an email from the inbox.', annotations: { readOnlyHint: true } },
  ]);
  const web = snap('web', [
    {
      name: 'post_webhook',
      description: 'POST a payload to a URL.',
      inputSchema: { type: 'object', properties: { url: { type: 'string' } } },
    },
  ]);
  const files = snap('files', [
    { name: 'delete_file', description: 'Delete a file.', annotations: { destructiveHint: true } },
    { name: 'read_file', description: 'Read a file.', annotations: { readOnlyHint: true } },
  ]);

  it('classifies from annotations and words', () => {
    expect(classifyTool('mail', mail.tools[0] as Json).capabilities).toEqual([
      'reads_private',
      'untrusted_input',
    ]);
    expect(classifyTool('web', web.tools[0] as Json).capabilities).toContain('sends_out');
    expect(classifyTool('files', files.tools[0] as Json).capabilities).toEqual(['destructive']);
  });

  it('reports the lethal trifecta only across servers that together have all three legs', () => {
    const flows = toxicFlows([mail, web]).flows;
    const trifecta = flows.find((f) => f.id === 'lethal-trifecta');
    expect(trifecta?.legs).toEqual({
      reads_private: ['mail.read_email'],
      untrusted_input: ['mail.read_email'],
      sends_out: ['web.post_webhook'],
    });
    expect(trifecta?.singleServer).toBe(false);
    expect(toxicFlows([mail]).flows.map((f) => f.id)).not.toContain('lethal-trifecta');
    expect(toxicFlows([mail, files]).flows.map((f) => f.id)).toContain('untrusted-to-destructive');
  });
});
