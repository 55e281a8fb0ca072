import { createRequire } from 'node:module';
import { ConfigError } from '@wafleet/protocol';

/** The optional peer dependencies of `@wafleet/core/express`, by package name. */
export interface OptionalPeers {
  express: typeof import('express');
  'prom-client': typeof import('prom-client');
}

const load = createRequire(import.meta.url);

/**
 * An optional peer dependency, loaded when first needed rather than at import, so that what does not need it
 * (`fleetGuard`, `idempotency`) can be imported without it installed. Both peers are CommonJS packages, so the host's
 * `import` and this `require` share one instance (one prom-client registry class).
 * @throws ConfigError (option: the package name) when the package is not installed
 */
export function optionalPeer<Name extends keyof OptionalPeers>(name: Name, neededBy: string): OptionalPeers[Name] {
  try {
    return load(name) as OptionalPeers[Name];
  } catch (err) {
    // Only the peer itself missing; a broken install of it (one of its own files missing) keeps its own error.
    const missing =
      (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && (err as Error).message.startsWith(`Cannot find module '${name}'`);
    if (!missing) throw err;
    throw new ConfigError(
      name,
      `${neededBy} needs ${name}, an optional peer dependency of @wafleet/core that is not installed: npm install ${name}`,
      { cause: err },
    );
  }
}
