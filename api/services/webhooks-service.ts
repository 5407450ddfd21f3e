import type { Queue } from 'bullmq';
import {
  AppError,
  checkWebhookUrl,
  createSecretBox,
  deliveryIdSchema,
  enqueueDeliveries,
  generateSecret,
  UnsafeUrlError,
  type Config,
  type Database,
  type Delivery,
  type DeliveryJobData,
  type DeliveryStatus,
  type Logger,
  type Subscription,
  type SubscriptionInput,
} from '../../shared/index.js';

export interface WebhooksServiceDeps {
  db: Database;
  config: Config;
  queue: Queue<DeliveryJobData>;
  logger: Logger;
}

export interface WebhooksService {
  create(input: SubscriptionInput): Promise<Subscription & { secret: string }>;
  list(): Promise<Subscription[]>;
  get(id: string): Promise<Subscription>;
  update(id: string, patch: Partial<SubscriptionInput>): Promise<Subscription>;
  remove(id: string): Promise<void>;
  deliveries(
    id: string,
    query: { status?: DeliveryStatus; cursor?: string; limit: number },
  ): Promise<{ items: Delivery[]; next_cursor: string | null }>;
  redeliver(id: string, deliveryId: string): Promise<Delivery>;
  /** A new secret; the old one goes on signing beside it for `graceSeconds`. */
  rotateSecret(id: string, graceSeconds: number): Promise<Subscription & { secret: string }>;
}

/** The subscription use cases: the URL guard, the secret made and sealed, redelivery enqueued after commit. */
export function createWebhooksService({ db, config, queue, logger }: WebhooksServiceDeps): WebhooksService {
  const box = createSecretBox(config.webhooks.secretKey);
  if (!box.encrypts) {
    logger.warn('WEBHOOK_SECRET_KEY is not set: webhook signing secrets are stored unencrypted in the database');
  }

  async function guard(url: string): Promise<void> {
    try {
      await checkWebhookUrl(url, { allowPrivate: config.webhooks.allowPrivateUrls });
    } catch (err) {
      if (!(err instanceof UnsafeUrlError)) throw err;
      throw new AppError('VALIDATION_ERROR', undefined, [
        { field: 'body.url', message: `"url" ${err.message}`, type: `url.${err.kind}` },
      ]);
    }
  }

  async function load(id: string): Promise<Subscription> {
    const found = await db.webhooks.findSubscription(id);
    if (!found) throw new AppError('WEBHOOK_NOT_FOUND');
    return found;
  }

  return {
    async create(input) {
      await guard(input.url);
      const secret = generateSecret();
      const subscription = await db.webhooks.createSubscription(input, box.seal(secret));
      return { ...subscription, secret };
    },
    list: () => db.webhooks.listSubscriptions(),
    get: load,
    async update(id, patch) {
      await load(id);
      if (patch.url !== undefined) await guard(patch.url);
      const updated = await db.webhooks.updateSubscription(id, patch);
      if (!updated) throw new AppError('WEBHOOK_NOT_FOUND');
      return updated;
    },
    async remove(id) {
      if (!(await db.webhooks.deleteSubscription(id))) throw new AppError('WEBHOOK_NOT_FOUND');
    },
    async deliveries(id, { status, cursor, limit }) {
      await load(id);
      const page = await db.webhooks.listDeliveries(id, { status, before: cursor, limit });
      return { items: page.items, next_cursor: page.next };
    },
    async rotateSecret(id, graceSeconds) {
      const secret = generateSecret();
      if (!(await db.webhooks.rotateSecret(id, box.seal(secret), Date.now() + graceSeconds * 1000))) {
        throw new AppError('WEBHOOK_NOT_FOUND');
      }
      return { ...(await load(id)), secret };
    },
    async redeliver(id, deliveryId) {
      await load(id);
      // a malformed id cannot name a delivery: the same 404 as an unknown one
      if (deliveryIdSchema.validate(deliveryId).error) throw new AppError('DELIVERY_NOT_FOUND');
      const outcome = await db.webhooks.redeliver(id, deliveryId);
      if (!outcome) throw new AppError('DELIVERY_NOT_FOUND');
      await enqueueDeliveries(queue, [outcome.job], logger);
      return outcome.delivery;
    },
  };
}
