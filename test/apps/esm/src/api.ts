import { defineApi, z } from "mend";

export const { Greeter } = defineApi({
  Greeter: {
    state: {},
    methods: {
      greet: {
        kind: "reader",
        request: { name: z.string() },
        response: { text: z.string(), shout: z.string(), url: z.string(), dirname: z.string(), filename: z.string(), resolved: z.string() },
      },
      // Fails deep in a chain of calls; retries only once a minute, so only a save runs it again soon.
      dive: {
        kind: "workflow",
        request: {},
        response: { depth: z.number() },
        retry: { initialMs: 60_000, maxMs: 60_000, jitter: false },
      },
    },
  },
});
