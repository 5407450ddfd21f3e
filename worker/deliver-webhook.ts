import type { Job, Queue } from 'bullmq';
import {
  checkWebhookUrl,
  createSecretBox,
  enqueueDeliveries,
  postJson,
  PostFailure,
  UnsafeUrlError,
  webhookHeaders,
  type DeliveryJobData,
  type DeliveryToSend,
  type Logger,
  type Lookup,
  type WebhookSettings,
  type WebhooksRepository,
} from '../shared/index.js';

/** How one delivery job ended (its return value, and the metrics' outcome label). */
export type DeliveryOutcome = 'delivered' | 'retried' | 'failed' | 'disabled' | 'skipped';

// the answer is read only so the connection can be reused; past this it is dropped
const MAX_ANSWER_BYTES = 64 * 1024;
const MAX_BACKOFF_MS = 3_600_000;

/** The delay before the attempt after `attempt`: WEBHOOK_BACKOFF_MS, doubling each time, at most an hour. */
export const backoffDelay = (baseMs: number, attempt: number): number =>
  Math.min(baseMs * 2 ** Math.min(attempt - 1, 30), MAX_BACKOFF_MS);

export interface DeliverWebhookDeps {
  webhooks: WebhooksRepository;
  /** loads a delivery to send, possibly in one query with other jobs' (the repository's, by default) */
  load?(deliveryId: string): Promise<DeliveryToSend | null>;
  /** marks one delivered, possibly in one transaction with others; false when another job settled it */
  delivered?(item: { id: string; seq: number; attempts: number; statusCode: number }): Promise<boolean>;
  queue: Queue<DeliveryJobData>;
  settings: WebhookSettings;
  logger: Logger;
  /** seconds an attempt's HTTP call took, by whether it got an answer */
  observeAttempt?(result: 'answered' | 'no_answer', seconds: number): void;
  lookup?: Lookup;
}

/**
 * The delivery job: one attempt. The row decides (a job whose number is not the row's
 * is left over and stops); the URL guard runs again, since a name may point elsewhere
 * now; a 2xx delivers, a 410 disables the subscription, anything else schedules the
 * next attempt under the next job number, until WEBHOOK_MAX_ATTEMPTS.
 */
export function createDeliveryHandler({
  webhooks,
  load = async (id) => (await webhooks.loadForSend([id]))[0] ?? null,
  delivered = async (item) => (await webhooks.markDelivered([item]))[0] ?? false,
  queue,
  settings,
  logger,
  observeAttempt,
  lookup,
}: DeliverWebhookDeps) {
  const box = createSecretBox(settings.secretKey);
  return async function deliverWebhook(job: Job<DeliveryJobData>): Promise<DeliveryOutcome> {
    const { deliveryId, seq } = job.data;
    const delivery = await load(deliveryId);
    if (!delivery) {
      // gone with its subscription, or pruned; a row left for a deleted subscription would be repaired forever
      await webhooks.dropOrphan(deliveryId);
      return 'skipped';
    }
    if (delivery.status !== 'pending' || delivery.seq !== seq) return 'skipped';
    const attempt = delivery.attempts + 1;
    const log = logger.child({ delivery_id: deliveryId, subscription_id: delivery.subscriptionId, attempt }, true);

    const fail = async (statusCode: number | null, error: string, permanent: boolean): Promise<DeliveryOutcome> => {
      const final = permanent || attempt >= settings.maxAttempts;
      const delay = backoffDelay(settings.backoffMs, attempt);
      const next = await webhooks.markAttemptFailed(deliveryId, seq, attempt, {
        statusCode,
        error,
        final,
        nextAttemptAt: Date.now() + delay,
      });
      if (next === null) return 'skipped';
      if (final) {
        log.warn({ status_code: statusCode, error }, 'webhook delivery failed');
        return 'failed';
      }
      log.info({ status_code: statusCode, error, retry_in_ms: delay }, 'webhook attempt failed, will retry');
      await enqueueDeliveries(queue, [{ deliveryId, seq: next }], logger, delay);
      return 'retried';
    };

    if (!delivery.enabled) return fail(null, 'the subscription is disabled', true);
    try {
      await checkWebhookUrl(delivery.url, { allowPrivate: settings.allowPrivateUrls, lookup });
    } catch (err) {
      if (!(err instanceof UnsafeUrlError)) throw err;
      // a name that does not resolve now may later; an address refused is refused
      return fail(null, `url ${err.message}`, err.kind !== 'unresolved');
    }
    let secrets: string[];
    try {
      secrets = delivery.secrets.map((stored) => box.open(stored));
    } catch (err) {
      // a key missing or changed in this process's configuration: another attempt may have it right
      return fail(null, (err as Error).message, false);
    }

    const started = performance.now();
    let status: number;
    try {
      const answer = await postJson(delivery.url, delivery.body, {
        headers: { ...webhookHeaders(secrets, deliveryId, delivery.body), 'user-agent': 'workflow-service-webhooks' },
        timeoutMs: settings.timeoutMs,
        maxResponseBytes: MAX_ANSWER_BYTES,
      });
      status = answer.status;
      observeAttempt?.('answered', (performance.now() - started) / 1000);
    } catch (err) {
      if (!(err instanceof PostFailure)) throw err;
      observeAttempt?.('no_answer', (performance.now() - started) / 1000);
      return fail(null, err.message, false);
    }
    if (status >= 200 && status < 300) {
      return (await delivered({ id: deliveryId, seq, attempts: attempt, statusCode: status }))
        ? 'delivered'
        : 'skipped';
    }
    if (status === 410) {
      await webhooks.disableSubscription(delivery.subscriptionId, 'the receiver answered 410 Gone');
      log.warn('receiver answered 410 Gone: subscription disabled');
      await fail(410, 'HTTP 410: the subscription is disabled', true);
      return 'disabled';
    }
    return fail(status, `HTTP ${status}`, false);
  };
}
