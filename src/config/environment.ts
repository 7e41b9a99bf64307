// `${NAME:default}` in strait.yaml, so one file serves every container of a deployment:
//
//   hostname-for-clients: ${STRAIT_EXTERNAL_ADDR:127.0.0.1}
//
// Every string in the file may hold references; `${NAME}` without a default must be set, or the
// file is refused naming the key and the variable (a silent empty host would send a site's
// traffic nowhere). `$${` writes a literal `${`. A value that becomes a number or a list keeps the
// string form: the value parsers accept `"10334"` and `"h1[1],h2[2]"` as flags do.
//
// Pure: the environment is handed in, never read from `process` here.

import { StraitError } from '../errors.ts';

export type Environment = Readonly<Record<string, string | undefined>>;

/** References per string, at most: a guard against a runaway file, far above any real use. */
const REFERENCES_PER_STRING_MAX = 64;
/** `$${` (an escaped, literal `${`), or `${NAME}` / `${NAME:default}`; the default may be empty. */
const REFERENCE = /\$\$\{|\$\{([^}:]*)(?::([^}]*))?\}/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function refused(source: string, key: string, reason: string): StraitError {
  return new StraitError('STRAIT_CONFIG_INVALID', { source, key, reason });
}

function substituteString(text: string, environment: Environment, source: string, key: string): string {
  if (!text.includes('${')) return text;
  // An unterminated reference is a typo the user wants to hear about, not a literal host.
  const unterminated = /\$\{[^}]*$/.exec(text.replaceAll('$${', ''));
  if (unterminated !== null) throw refused(source, key, `${JSON.stringify(unterminated[0])} has no closing }`);
  let references = 0;
  const result = text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    references += 1;
    if (references > REFERENCES_PER_STRING_MAX) {
      throw refused(source, key, `more than ${REFERENCES_PER_STRING_MAX} \${...} references in one value`);
    }
    if (name === undefined || !VARIABLE_NAME.test(name)) {
      throw refused(source, key, `${JSON.stringify(match)} is not a variable reference: write \${NAME} or \${NAME:default}`);
    }
    const value = environment[name];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    throw refused(source, key, `uses \${${name}}, and the environment variable ${name} is not set `
      + `(set it, or give a default: \${${name}:value})`);
  });
  return result;
}

/**
 * Replaces the `${...}` references in every string of a parsed strait.yaml (mappings and lists
 * walked to any depth). Keys are not substituted. Throws STRAIT_CONFIG_INVALID naming the key
 * (`gateway-receiver.hostname-for-clients`) for an unset variable without a default.
 */
export function substituteEnvironment(value: unknown, environment: Environment, source: string, key = ''): unknown {
  if (typeof value === 'string') return substituteString(value, environment, source, key || '(file)');
  if (Array.isArray(value)) {
    return value.map((item, index) => substituteEnvironment(item, environment, source, `${key}[${index}]`));
  }
  if (value !== null && typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const [childKey, child] of Object.entries(value)) {
      result[childKey] = substituteEnvironment(child, environment, source, key === '' ? childKey : `${key}.${childKey}`);
    }
    return result;
  }
  return value;
}
