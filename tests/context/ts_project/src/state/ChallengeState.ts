import { ChallengeResult } from "../result/FlowResult.js";
import { measure } from "../telemetry/measure.js";

/** Waits for the user to answer a challenge. */
export class ChallengeState {
    constructor(private readonly correlationId: string) {}

    /**
     * Asks the server for a new challenge.
     * @param authMethodId the method to challenge
     */
    async requestChallenge(
        authMethodId: string
    ): Promise<ChallengeResult> {
        try {
            measure(authMethodId, this.correlationId);
            return new ChallengeResult(this.correlationId as never);
        } catch (error) {
            return ChallengeResult.createWithError(error) as ChallengeResult;
        }
    }
}
