// globalSetup of the PostgreSQL project of the test run (vitest.config.ts): one PostgreSQL
// server for the whole run, from the machine's binaries; each test gets a schema of its own
// (test/helpers/stores.ts). The server is stopped at the end, also after failed tests.
import type { TestProject } from "vitest/node";
import { startPostgres } from "./postgres-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The test run's PostgreSQL server. */
    pgUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide("pgUrl", server.url);
  return () => server.stop();
}
