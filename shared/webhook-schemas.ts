import Joi from 'joi';
import { EVENT_TYPES } from './events.js';
import { StrictJoi } from './schemas.js';

/** Requests and answers of `/webhooks` and `GET /events`. */

const URL_MAX = 2048;
const DESCRIPTION_MAX = 500;
const CATEGORIES_MAX = 100;
export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export const DELIVERIES_LIMIT_DEFAULT = 50;
export const DELIVERIES_LIMIT_MAX = 200;

const instant = Joi.string().isoDate().description('ISO 8601 instant, UTC');
const eventName = Joi.string().valid(...EVENT_TYPES);
// as for records: no control characters or lone surrogates, which PostgreSQL or UTF-8 cannot store
const STORABLE_TEXT = /^[^\p{Cc}\p{Cs}]*$/u;
const storable = (schema: Joi.StringSchema) =>
  schema.pattern(STORABLE_TEXT, 'storable text').meta({ swagger: { pattern: STORABLE_TEXT.source } });
const category = storable(Joi.string().min(1).max(128));

const url = Joi.string()
  .max(URL_MAX)
  .uri({ scheme: ['http', 'https'] })
  .description('http(s); its host must resolve to public addresses unless WEBHOOK_ALLOW_PRIVATE_URLS=true');
const events = Joi.array().items(eventName).min(1).unique().description('the events to send, at least one');
const categories = Joi.array()
  .items(category)
  .min(1)
  .max(CATEGORIES_MAX)
  .unique()
  .allow(null)
  .description('only records of these categories (all when absent or null)');
const description = storable(Joi.string().max(DESCRIPTION_MAX)).allow('', null);

export const webhookInputSchema = StrictJoi.object({
  url: url.required(),
  events: events.required(),
  categories,
  description,
  enabled: Joi.boolean().default(true),
})
  .unknown(false)
  .meta({ className: 'WebhookInput' });

export const webhookPatchSchema = StrictJoi.object({ url, events, categories, description, enabled: Joi.boolean() })
  .unknown(false)
  .min(1)
  .meta({ className: 'WebhookPatch' });

export const ROTATION_GRACE_DEFAULT_SECONDS = 86_400;
export const ROTATION_GRACE_MAX_SECONDS = 7 * 86_400;

export const rotateSecretSchema = StrictJoi.object({
  grace_seconds: Joi.number()
    .integer()
    .min(0)
    .max(ROTATION_GRACE_MAX_SECONDS)
    .default(ROTATION_GRACE_DEFAULT_SECONDS)
    .description('how long the old secret goes on signing beside the new one (default a day, at most a week)'),
})
  .unknown(false)
  .meta({ className: 'RotateSecret' });

export const webhookIdSchema = Joi.string().guid({ version: ['uuidv4'] });
export const deliveryIdSchema = Joi.string().guid({ version: ['uuidv7'] });

export const deliveriesQuerySchema = StrictJoi.object({
  status: Joi.string().valid(...DELIVERY_STATUSES),
  limit: Joi.number()
    .integer()
    .min(1)
    .unsafe()
    .default(DELIVERIES_LIMIT_DEFAULT)
    .custom((n: number) => Math.min(n, DELIVERIES_LIMIT_MAX))
    .description(`deliveries per page, ${DELIVERIES_LIMIT_DEFAULT} by default, at most ${DELIVERIES_LIMIT_MAX}`),
  cursor: deliveryIdSchema.description('next_cursor of the previous page'),
}).unknown(false);

export const eventsQuerySchema = StrictJoi.object({
  category: category.description('exact match'),
  source: storable(Joi.string().min(1).max(128)).description('exact match'),
  record_id: Joi.string().guid().description('one record only'),
  last_event_id: Joi.number().integer().min(0).unsafe().description('resume after this id (as Last-Event-ID)'),
}).unknown(false);

const subscriptionKeys = {
  id: Joi.string().guid().required(),
  url: Joi.string().required(),
  events: Joi.array().items(eventName).required(),
  categories: Joi.array().items(Joi.string()).allow(null).required(),
  description: Joi.string().allow('', null).required(),
  enabled: Joi.boolean().required().description('false after a 410 from the receiver, or when switched off'),
  created_at: instant.required(),
};

export const webhookSchema = Joi.object(subscriptionKeys).meta({ className: 'Webhook' });

export const createdWebhookSchema = Joi.object({
  ...subscriptionKeys,
  secret: Joi.string()
    .pattern(/^whsec_/)
    .required()
    .description('the signing secret (`whsec_<base64>`): shown in this answer only'),
}).meta({ className: 'CreatedWebhook' });

export const webhooksPageSchema = Joi.object({ items: Joi.array().items(webhookSchema).required() }).meta({
  className: 'Webhooks',
});

export const deliverySchema = Joi.object({
  id: Joi.string().guid().required().description('the `webhook-id` header of every attempt'),
  event: eventName.required(),
  record_id: Joi.string().guid().required(),
  status: Joi.string()
    .valid(...DELIVERY_STATUSES)
    .required(),
  attempts: Joi.number().integer().min(0).required(),
  last_status_code: Joi.number().integer().allow(null).required(),
  last_error: Joi.string().allow(null).required(),
  created_at: instant.required(),
  delivered_at: instant.allow(null).required(),
  next_attempt_at: instant.allow(null).required().description('while pending'),
}).meta({ className: 'Delivery' });

export const deliveriesPageSchema = Joi.object({
  items: Joi.array().items(deliverySchema).required().description('newest first'),
  next_cursor: Joi.string().allow(null).required().description('pass as `cursor` for the next page'),
}).meta({ className: 'Deliveries' });
