// A reader of deploy/Dockerfile good enough for checking it without a Docker engine: instructions
// (continuation lines joined, comments dropped), grouped by build stage, with the global ARG
// defaults substituted into FROM, and ENV / USER / JSON-form arguments decoded.

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, ... */
  readonly keyword: string;
  readonly arguments: string;
  /** 1-based line of the instruction's start, for messages. */
  readonly line: number;
}

export interface Stage {
  /** The image after ARG substitution: `node:24-bookworm-slim`. */
  readonly image: string;
  /** `AS name`, if any. */
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  /** ARG instructions before the first FROM, with their defaults. */
  readonly globalArguments: Readonly<Record<string, string>>;
  readonly stages: readonly Stage[];
}

function instructionsOf(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const start = index;
    let line = lines[index] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && index + 1 < lines.length) {
      index += 1;
      const next = lines[index] ?? '';
      if (/^\s*#/.test(next)) continue; // a comment inside a continued instruction
      line = `${line.replace(/\\\s*$/, '')} ${next.trim()}`;
    }
    const match = /^\s*([A-Za-z]+)\s*(.*)$/.exec(line);
    if (match === null) throw new Error(`Dockerfile line ${start + 1}: not an instruction: ${line}`);
    instructions.push({ keyword: (match[1] ?? '').toUpperCase(), arguments: (match[2] ?? '').trim(), line: start + 1 });
  }
  return instructions;
}

function substitute(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced?: string, bare?: string) => values[braced ?? bare ?? ''] ?? whole);
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArguments: Record<string, string> = {};
  const stages: { image: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const instruction of instructionsOf(text)) {
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = substitute(instruction.arguments, globalArguments).replace(/--platform=\S+\s+/, '').split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) {
      if (instruction.keyword !== 'ARG') throw new Error(`Dockerfile line ${instruction.line}: ${instruction.keyword} before the first FROM`);
      const [name = '', value = ''] = instruction.arguments.split('=', 2);
      globalArguments[name] = value;
      continue;
    }
    stage.instructions.push(instruction);
  }
  return { globalArguments, stages };
}

/** A JSON-form argument list (`["a", "b"]`), or undefined for the shell form. */
export function jsonForm(text: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new Error(`not a JSON list of strings: ${text}`);
  return value;
}

/** `ENV A=1 B=2` instructions of a stage, merged. */
export function environmentOf(stage: Stage): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const instruction of stage.instructions.filter((candidate) => candidate.keyword === 'ENV')) {
    for (const pair of instruction.arguments.split(/\s+/)) {
      const equals = pair.indexOf('=');
      if (equals > 0) environment[pair.slice(0, equals)] = pair.slice(equals + 1);
    }
  }
  return environment;
}

export function lastInstruction(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword).at(-1);
}
