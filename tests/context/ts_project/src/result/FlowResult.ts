import { CustomAuthError } from "../errors/CustomAuthError.js";

export interface FlowStateParameters {
    correlationId: string;
}

/** A state of an authentication flow. */
export abstract class FlowStateBase<
    TParameters extends FlowStateParameters = FlowStateParameters,
> {
    constructor(protected readonly parameters: TParameters) {}
}

/** What a step of a flow gives back: the next state, or an error. */
export class FlowResult<
    TState extends FlowStateBase<FlowStateParameters> = FlowStateBase<FlowStateParameters>,
    TError extends CustomAuthError = CustomAuthError,
    TData = void,
> extends Map<string, Array<TState | TError>> {
    constructor(
        public readonly state: TState,
        public readonly data?: TData
    ) {
        super();
    }

    static createWithError(error: unknown): FlowResult {
        return new FlowResult(error as FlowStateBase);
    }
}

/** The result of asking the server for a new challenge. */
export class ChallengeResult extends FlowResult<FlowStateBase<FlowStateParameters>, CustomAuthError, string> {
    isCompleted(): boolean {
        return this.data !== undefined;
    }
}
