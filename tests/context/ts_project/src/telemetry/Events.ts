/** Names of the telemetry events. */

export const AcquirePopupTokenEvent = "acquirePopupTokenEvent";
export const TokenAccountCacheEvent = "tokenAccountCacheEvent";
export const SilentSilentRefreshEvent = "silentSilentRefreshEvent";
export const PopupBrokerStorageEvent = "popupBrokerStorageEvent";
export const RedirectCacheAccountEvent = "redirectCacheAccountEvent";
export const CacheRequestIframeEvent = "cacheRequestIframeEvent";
export const LookupRefreshNetworkEvent = "lookupRefreshNetworkEvent";
export const NetworkHandlerLookupEvent = "networkHandlerLookupEvent";
export const RequestTokenBrokerEvent = "requestTokenBrokerEvent";
export const RefreshSilentTokenEvent = "refreshSilentTokenEvent";
export const AccountStorageHandlerEvent = "accountStorageHandlerEvent";
export const StorageLookupPopupEvent = "storageLookupPopupEvent";
export const BrokerRequestCacheEvent = "brokerRequestCacheEvent";
export const IframeRedirectRequestEvent = "iframeRedirectRequestEvent";
export const HandlerStorageBrokerEvent = "handlerStorageBrokerEvent";
export const PopupRefreshIframeEvent = "popupRefreshIframeEvent";
