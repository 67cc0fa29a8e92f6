import { signal } from "@preact/signals";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, get, needSecret, session, setSecret, type Session } from "./api";
import { connect, connection, onEvent } from "./live";
import { parseRoute } from "./route";
import { DevView } from "./views/dev";
import { InstancesView, InstanceView, TypesView } from "./views/states";
import { TaskView } from "./views/task";
import { TasksView } from "./views/tasks";

const hash = signal(location.hash);
addEventListener("hashchange", () => (hash.value = location.hash));
// The version in the header follows the loads.
onEvent((e) => {
  if (e.type === "version:loaded" && session.value) session.value = { ...session.value, version: String(e.data.version) };
});
const problem = signal<string | undefined>(undefined);

async function start(): Promise<void> {
  try {
    session.value = await get<Session>("/v1/dashboard");
    problem.value = undefined;
    void connect();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) problem.value = (e as Error).message;
  }
}

function SecretForm() {
  const [value, setValue] = useState("");
  return (
    <form
      class="secret"
      onSubmit={(e) => {
        e.preventDefault();
        setSecret(value);
        void start();
      }}
    >
      <h2>This server needs its admin secret</h2>
      <p>It is kept for this tab only (sessionStorage) and sent with each request.</p>
      <input type="password" aria-label="Admin secret" autocomplete="current-password" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      <button type="submit">Open</button>
    </form>
  );
}

function Page() {
  const route = parseRoute(hash.value);
  switch (route.page) {
    case "tasks":
      return <TasksView query={route.query} />;
    case "task":
      return <TaskView uuid={route.uuid} />;
    case "types":
      return <TypesView />;
    case "instances":
      return <InstancesView type={route.type} query={route.query} />;
    case "instance":
      return <InstanceView type={route.type} id={route.id} />;
    case "dev":
      return <DevView dev={session.value?.dev ?? false} />;
  }
}

function App() {
  useEffect(() => void start(), []);
  const page = parseRoute(hash.value).page;
  const tab = page === "tasks" || page === "task" ? "tasks" : page === "dev" ? "dev" : "state";
  const s = session.value;
  return (
    <>
      <header>
        <a class="brand" href="#/tasks">
          mend
        </a>
        <nav>
          <a class={tab === "tasks" ? "on" : ""} href="#/tasks">
            Tasks
          </a>
          <a class={tab === "state" ? "on" : ""} href="#/state">
            State
          </a>
          <a class={tab === "dev" ? "on" : ""} href="#/dev">
            {s?.dev === false ? "Versions" : "Dev loop"}
          </a>
        </nav>
        <span class="spacer" />
        {s ? <span class="mono dim">{s.version}</span> : null}
        <span class={`dot ${connection.value}`} title={connection.value === "live" ? "Live" : connection.value === "down" ? "Reconnecting…" : "Connecting…"} />
      </header>
      <main>
        {needSecret.value ? <SecretForm /> : null}
        {problem.value ? <p class="problem">{problem.value}</p> : null}
        {/* The lists load at once, beside the session: only actions need its token. */}
        {needSecret.value ? null : <Page />}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
