// The page's places, in the URL's hash: `#/tasks?status=…`, `#/task/UUID`, `#/state`,
// `#/state/TYPE`, `#/state/TYPE/ID`, `#/dev`.

export type Route =
  | { page: "tasks"; query: Record<string, string> }
  | { page: "task"; uuid: string }
  | { page: "types" }
  | { page: "instances"; type: string; query: Record<string, string> }
  | { page: "instance"; type: string; id: string }
  | { page: "dev" };

export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#\/?/, "");
  const [path = "", search = ""] = splitOnce(text, "?");
  const parts = path.split("/").filter(Boolean).map(decode);
  const query = Object.fromEntries(new URLSearchParams(search));
  if (parts[0] === "task" && parts[1]) return { page: "task", uuid: parts[1] };
  if (parts[0] === "state" && parts[1] && parts[2] !== undefined) return { page: "instance", type: parts[1], id: parts.slice(2).join("/") };
  if (parts[0] === "state" && parts[1]) return { page: "instances", type: parts[1], query };
  if (parts[0] === "state") return { page: "types" };
  if (parts[0] === "dev") return { page: "dev" };
  return { page: "tasks", query };
}

export function formatRoute(route: Route): string {
  const q = (query: Record<string, string>) => {
    const s = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "")).toString();
    return s ? `?${s}` : "";
  };
  switch (route.page) {
    case "tasks":
      return `#/tasks${q(route.query)}`;
    case "task":
      return `#/task/${encodeURIComponent(route.uuid)}`;
    case "types":
      return "#/state";
    case "instances":
      return `#/state/${encodeURIComponent(route.type)}${q(route.query)}`;
    case "instance":
      return `#/state/${encodeURIComponent(route.type)}/${encodeURIComponent(route.id)}`;
    case "dev":
      return "#/dev";
  }
}

function splitOnce(text: string, sep: string): [string, string] {
  const i = text.indexOf(sep);
  return i < 0 ? [text, ""] : [text.slice(0, i), text.slice(i + 1)];
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
