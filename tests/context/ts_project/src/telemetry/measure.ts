/** Records that the event happened for this correlation id. */
export function measure(event: string, correlationId: string): void {
    console.debug(event, correlationId);
}
