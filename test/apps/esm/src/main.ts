import { Application } from "mend";
import { GreeterServicer } from "./greeter.js";

export default new Application({ servicers: [GreeterServicer] });
