import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CustosError } from '../core/errors.js';
import { detectorNames } from './detectors.js';

const stepKinds = ['quarantine', 'revoke_bindings', 'notify', 'open_approval', 'snapshot'] as const;
export type StepKind = (typeof stepKinds)[number];

const stepOptions = {
  quarantine: z.strictObject({ reason: z.string().min(1).optional() }),
  revoke_bindings: z.strictObject({}),
  notify: z.strictObject({
    webhook: z.url({ protocol: /^https?$/ }).optional(),
    text: z.string().min(1).optional(),
  }),
  open_approval: z.strictObject({ approvers: z.number().int().min(1).max(5).optional() }),
  snapshot: z.strictObject({}),
} satisfies Record<StepKind, z.ZodType>;

export interface PlaybookStep {
  readonly kind: StepKind;
  readonly options: Record<string, unknown>;
}

/** A playbook: when it runs (trigger) and what it does (steps, in order). */
export interface Playbook {
  readonly name: string;
  readonly description: string;
  /** Detectors whose findings start it ("manual" for a person's kill); empty means any. */
  readonly detectors: readonly string[];
  /** Finding actions that start it; quarantine by default. */
  readonly actions: readonly string[];
  /** Record what each step would do without doing it. */
  readonly dryRun: boolean;
  readonly steps: readonly PlaybookStep[];
}

const step = z.union([
  z.enum(stepKinds),
  z
    .record(z.string(), z.unknown())
    .refine((o) => Object.keys(o).length === 1 && stepKinds.includes(Object.keys(o)[0] as StepKind), {
      message: 'a step is one key: quarantine, revoke_bindings, notify, open_approval or snapshot',
    }),
]);

const playbookSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'use lower-case letters, digits, "-" and "_"'),
  description: z.string().default(''),
  trigger: z
    .strictObject({
      detectors: z.array(z.enum([...detectorNames, 'manual'])).default([]),
      actions: z.array(z.enum(['alert', 'throttle', 'quarantine'])).default(['quarantine']),
    })
    .prefault({}),
  dryRun: z.boolean().default(false),
  steps: z.array(step).min(1),
});

/** Parse and validate one playbook's YAML text; errors name the file and the key path. */
export function parsePlaybook(text: string, source: string): Playbook {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new CustosError('config_invalid', `${source} is not valid YAML: ${(error as Error).message}`);
  }
  const parsed = playbookSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (i) => `  ${i.path.map(String).join('.') || '(top level)'}: ${i.message}`,
    );
    throw new CustosError('config_invalid', `playbook ${source} is invalid:\n${lines.join('\n')}`);
  }
  const steps = parsed.data.steps.map((s, index): PlaybookStep => {
    const [kind, value] = typeof s === 'string' ? [s, {}] : (Object.entries(s)[0] as [StepKind, unknown]);
    const options = stepOptions[kind].safeParse(value ?? {});
    if (!options.success) {
      const why = options.error.issues.map((i) => `${i.path.join('.') || kind}: ${i.message}`).join('; ');
      throw new CustosError(
        'config_invalid',
        `playbook ${source} is invalid:\n  steps.${index}.${kind}: ${why}`,
      );
    }
    return { kind, options: options.data as Record<string, unknown> };
  });
  return {
    name: parsed.data.name,
    description: parsed.data.description,
    detectors: parsed.data.trigger.detectors,
    actions: parsed.data.trigger.actions,
    dryRun: parsed.data.dryRun,
    steps,
  };
}

/** Every *.yaml / *.yml playbook in a directory, sorted by file name; names must be unique. */
export function loadPlaybooks(dir: string): Playbook[] {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
  } catch (error) {
    throw new CustosError('config_invalid', `cannot read the playbooks directory ${dir}`, { cause: error });
  }
  const playbooks = files.map((f) => parsePlaybook(readFileSync(join(dir, f), 'utf8'), basename(f)));
  const seen = new Set<string>();
  for (const p of playbooks) {
    if (seen.has(p.name)) throw new CustosError('config_invalid', `two playbooks are named "${p.name}"`);
    seen.add(p.name);
  }
  return playbooks;
}

/** Whether a finding (or a manual kill) starts this playbook. */
export function playbookMatches(p: Playbook, detector: string, action: string): boolean {
  return (p.detectors.length === 0 || p.detectors.includes(detector)) && p.actions.includes(action);
}
