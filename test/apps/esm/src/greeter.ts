import { shout } from "esm-only";
import { Greeter } from "./api.js";
import { level1 } from "./chain.js";
import { collectGarbage } from "./gc.js";
import { settings, where } from "./settings.js";

export const GreeterServicer = Greeter.servicer({
  async greet(ctx, state, req) {
    return { text: `${settings.greeting}, ${req.name}`, shout: shout(req.name), ...where };
  },
  async dive(ctx) {
    await collectGarbage();
    return { depth: level1(1) };
  },
});
