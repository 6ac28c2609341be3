import * as Events from "../telemetry/Events.js";
import { measure } from "../telemetry/measure.js";
import { InvalidArgumentError } from "../errors/InvalidArgumentError.js";

/** Lets the user pick one of the authentication methods the server offered. */
export class SelectionState {
    constructor(
        private readonly correlationId: string,
        private readonly methods: string[]
    ) {}

    async select(method: string): Promise<string> {
        measure(Events.AcquirePopupTokenEvent, this.correlationId);
        measure(Events.TokenAccountCacheEvent, this.correlationId);
        measure(Events.SilentSilentRefreshEvent, this.correlationId);
        measure(Events.PopupBrokerStorageEvent, this.correlationId);
        if (!this.methods.includes(method)) {
            throw new InvalidArgumentError("method", this.correlationId);
        }
        measure(Events.RedirectCacheAccountEvent, this.correlationId);
        measure(Events.CacheRequestIframeEvent, this.correlationId);
        measure(Events.LookupRefreshNetworkEvent, this.correlationId);
        measure(Events.NetworkHandlerLookupEvent, this.correlationId);
        measure(Events.RequestTokenBrokerEvent, this.correlationId);
        return method;
    }

    describe(): string {
        measure(Events.RefreshSilentTokenEvent, this.correlationId);
        measure(Events.AccountStorageHandlerEvent, this.correlationId);
        measure(Events.StorageLookupPopupEvent, this.correlationId);
        measure(Events.BrokerRequestCacheEvent, this.correlationId);
        return this.methods.join(", ");
    }

    checkContact(contact: string): void {
        if (!contact) {
            throw new InvalidArgumentError("contact", this.correlationId);
        }
    }
}
