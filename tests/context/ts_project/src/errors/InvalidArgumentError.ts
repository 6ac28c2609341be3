import { CustomAuthError } from "./CustomAuthError.js";

/** An argument of a public method is missing or malformed. */
export class InvalidArgumentError extends CustomAuthError {
    constructor(argName: string, correlationId?: string) {
        super(`invalid_argument: ${argName}`, correlationId);
    }
}
