// Offline validation of Kubernetes manifests against the Kubernetes API's schemas, in two passes
// that need no cluster:
//
// 1. kubernetes-models' validators, compiled from the official OpenAPI document: types, formats,
//    required fields (`replicas: "3"`, `containerPort: web` are refused).
// 2. Unknown fields. The OpenAPI schemas don't close their objects (a real API server drops or
//    refuses unknown fields depending on its field validation setting), so pass 1 lets
//    `readinesProbe:` through — the typo that silently leaves a pod without a readiness probe. The
//    same package ships TypeScript interfaces generated from that document, and TypeScript refuses
//    excess properties in an object literal: each manifest is type-checked as
//    `const manifest: IStatefulSet = { ...the manifest as JSON... }`.
//
// A manifest is { file, index } (its place in a multi-document YAML file) and its document.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

export const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));

export interface Manifest {
  /** Path relative to the repository. */
  readonly file: string;
  /** The document's index in its file. */
  readonly index: number;
  readonly document: Record<string, unknown>;
}

export function describeManifest(manifest: Manifest): string {
  const metadata = manifest.document['metadata'] as { name?: string } | undefined;
  return `${manifest.file}#${manifest.index} (${String(manifest.document['kind'])} ${metadata?.name ?? '?'})`;
}

/** Every document of a YAML text; a YAML error throws naming the file. */
export function parseYamlDocuments(text: string, file: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((document, index) => {
    if (document.errors.length > 0) throw new Error(`${file}#${index}: ${document.errors[0]?.message ?? 'invalid YAML'}`);
    const value: unknown = document.toJS();
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${file}#${index}: not a mapping`);
    return value as Record<string, unknown>;
  });
}

/** The Kubernetes objects of every .yaml file in `directory`, but kustomization.yaml. */
export function loadManifests(directory: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const name of readdirSync(directory).filter((entry) => entry.endsWith('.yaml') && entry !== 'kustomization.yaml').sort()) {
    const path = join(directory, name);
    const file = relative(REPOSITORY, path);
    parseYamlDocuments(readFileSync(path, 'utf8'), file).forEach((document, index) => manifests.push({ file, index, document }));
  }
  return manifests;
}

const API_VERSION = /^(?:([a-z0-9.]+)\/)?(v[0-9]+(?:(?:alpha|beta)[0-9]+)?)$/;
const KIND = /^[A-Z][A-Za-z0-9]*$/;

/** The kubernetes-models module of an apiVersion and kind: `apps/v1` StatefulSet → kubernetes-models/apps/v1/StatefulSet. */
function modelModule(document: Record<string, unknown>): { module: string; kind: string } | string {
  const apiVersion = document['apiVersion'];
  const kind = document['kind'];
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return 'apiVersion and kind must be strings';
  const match = API_VERSION.exec(apiVersion);
  if (match === null || !KIND.test(kind)) return `apiVersion ${JSON.stringify(apiVersion)} / kind ${JSON.stringify(kind)} is not of the form group/version, Kind`;
  const group = match[1] === undefined ? '' : `${match[1]}/`;
  return { module: `kubernetes-models/${group}${match[2]}/${kind}`, kind };
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Pass 1: the OpenAPI-derived validators. */
async function schemaProblems(manifest: Manifest): Promise<string[]> {
  const model = modelModule(manifest.document);
  if (typeof model === 'string') return [`${describeManifest(manifest)}: ${model}`];
  let exports: Record<string, unknown>;
  try {
    exports = (await import(model.module)) as Record<string, unknown>;
  } catch {
    return [`${describeManifest(manifest)}: no such Kubernetes type ${model.module.slice('kubernetes-models/'.length)}`];
  }
  const Model = exports[model.kind] as ModelClass | undefined;
  if (Model === undefined) return [`${describeManifest(manifest)}: ${model.module} exports no ${model.kind}`];
  try {
    new Model(manifest.document).validate();
    return [];
  } catch (error) {
    return [`${describeManifest(manifest)}: ${error instanceof Error ? error.message : String(error)}`];
  }
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  skipLibCheck: true,
  types: [],
  lib: ['lib.es2022.d.ts'],
};

/** Pass 2: TypeScript's excess-property and type checks against the generated interfaces. */
function typeProblems(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const sources = new Map<string, { manifest: Manifest; text: string }>();
  for (const manifest of manifests) {
    const model = modelModule(manifest.document);
    if (typeof model === 'string') continue; // pass 1 reports it
    // A file beside the manifest (it need not exist): node_modules resolves from the repository.
    const path = join(REPOSITORY, `${manifest.file}.${manifest.index}.check.ts`);
    const text = `import type { I${model.kind} } from '${model.module}';\n`
      + `export const manifest: I${model.kind} = ${JSON.stringify(manifest.document, null, 2)};\n`;
    sources.set(path, { manifest, text });
  }
  const host = ts.createCompilerHost(COMPILER_OPTIONS);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const source = sources.get(fileName);
    return source === undefined ? getSourceFile(fileName, languageVersion, onError, shouldCreate) : ts.createSourceFile(fileName, source.text, languageVersion, true);
  };
  host.fileExists = (fileName) => sources.has(fileName) || fileExists(fileName);
  host.readFile = (fileName) => sources.get(fileName)?.text ?? readFile(fileName);
  const program = ts.createProgram([...sources.keys()], COMPILER_OPTIONS, host);
  for (const [path, { manifest, text }] of sources) {
    const sourceFile = program.getSourceFile(path);
    if (sourceFile === undefined) throw new Error(`${path} was not compiled`);
    const lines = text.split('\n');
    for (const diagnostic of [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)]) {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n  ');
      const line = diagnostic.start === undefined ? undefined : sourceFile.getLineAndCharacterOfPosition(diagnostic.start).line;
      const at = line === undefined ? '' : ` at \`${(lines[line] ?? '').trim()}\``;
      problems.push(`${describeManifest(manifest)}${at}: ${message}`);
    }
  }
  return problems;
}

/** Every problem of every manifest, each naming the manifest; [] when all are valid. */
export async function validateManifests(manifests: readonly Manifest[]): Promise<string[]> {
  const problems: string[] = [];
  for (const manifest of manifests) problems.push(...(await schemaProblems(manifest)));
  problems.push(...typeProblems(manifests));
  return problems;
}

export const KUBERNETES_DIRECTORY = join(REPOSITORY, 'deploy', 'kubernetes');
export const DEPLOY_DIRECTORY = dirname(KUBERNETES_DIRECTORY);
