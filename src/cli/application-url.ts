/** Where `mend task …` looks for the application when neither `--application-url` nor MEND_APPLICATION_URL says. */
export const DEFAULT_APPLICATION_URL = "http://localhost:9991";

/** The variable that sets the default of `--application-url`. */
export const APPLICATION_URL_VARIABLE = "MEND_APPLICATION_URL";

/**
 * The shell line that points `mend task …` (and scripts) at a server, printed by `mend serve`
 * and `mend dev run` when they picked the port: `export MEND_APPLICATION_URL=http://127.0.0.1:41234`.
 * The URL is quoted when it holds anything a shell would read specially (an IPv6 address's brackets).
 */
export function applicationUrlExportLine(url: string): string {
  const value = /^[A-Za-z0-9:/._-]+$/.test(url) ? url : `'${url.replaceAll("'", "'\\''")}'`;
  return `export ${APPLICATION_URL_VARIABLE}=${value}`;
}
