// What the deployment tests share: the environment variables Strait reads, and building a member's
// configuration from a container's environment (and strait.yaml) with the same code `strait run`
// uses — so a deployment file whose variables or declarations a member would refuse fails here,
// without a Docker engine or a cluster.

import { buildMemberConfig, ROUTER_SECRET_ENVIRONMENT_VARIABLE, type MemberConfig, type MemberRole } from '../../src/config/member-config.ts';
import {
  ADMIN_TOKEN_ENVIRONMENT_VARIABLE,
  MEMBER_FLAGS,
  MEMBER_ROLES,
  ROLE_ENVIRONMENT_VARIABLE,
  environmentVariableFor,
  memberFlagValues,
  namingEnvironmentVariables,
} from '../../src/cli/member-commands.ts';

/**
 * Every STRAIT_* variable a deployment may set: one per member flag, the role and location, the
 * router secret, and the client commands' defaults (`strait put` inside a container). Anything
 * else with the prefix is a typo a member would silently ignore (STRAIT_SITEID).
 */
export const STRAIT_VARIABLES: ReadonlySet<string> = new Set([
  ...MEMBER_FLAGS.map((flag) => environmentVariableFor(flag.key)),
  environmentVariableFor('dir'),
  environmentVariableFor('config'),
  ROLE_ENVIRONMENT_VARIABLE,
  ROUTER_SECRET_ENVIRONMENT_VARIABLE,
  ADMIN_TOKEN_ENVIRONMENT_VARIABLE,
  // src/cli/main.ts (LOCATOR_ENVIRONMENT_VARIABLE) and src/cli/topology-commands.ts; main.ts runs the
  // CLI when imported, so the names are repeated here.
  'STRAIT_LOCATOR',
  'STRAIT_CONTROLLER',
  'STRAIT_CONTROLLER_TOKEN',
]);

export function unknownStraitVariables(names: Iterable<string>): string[] {
  return [...names].filter((name) => name.startsWith('STRAIT_') && !STRAIT_VARIABLES.has(name));
}

export function isRole(value: unknown): value is MemberRole {
  return typeof value === 'string' && (MEMBER_ROLES as readonly string[]).includes(value);
}

/**
 * The configuration `strait run` would build in a container with this environment and no
 * command-line flags: the role from STRAIT_ROLE, flags from STRAIT_*, `${NAME}` in the strait.yaml
 * text (if any) from the same environment. Throws the member's own coded error.
 */
export function memberConfigFromEnvironment(
  environment: Readonly<Record<string, string>>, configFile?: { path: string; text: string },
): MemberConfig {
  const role = environment[ROLE_ENVIRONMENT_VARIABLE];
  if (!isRole(role)) throw new Error(`${ROLE_ENVIRONMENT_VARIABLE} is ${JSON.stringify(role)}, not one of ${MEMBER_ROLES.join(', ')}`);
  return namingEnvironmentVariables({}, environment, () =>
    buildMemberConfig(role, memberFlagValues({}, environment), configFile, { environment, interfaces: {}, readFile: () => '' }));
}

/** The shorthand `{ host, port }` of a configured address list, as `host:port` strings. */
export function addressStrings(addresses: readonly { host: string; port: number }[]): string[] {
  return addresses.map((address) => `${address.host}:${address.port}`);
}
