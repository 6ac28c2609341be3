/** The base of every error this library throws. */
export class CustomAuthError extends Error {
    constructor(
        public readonly code: string,
        public readonly correlationId?: string
    ) {
        super(code);
    }
}
