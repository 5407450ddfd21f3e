import Joi from 'joi';
import {
  createdWebhookSchema,
  deliveriesPageSchema,
  deliveriesQuerySchema,
  deliveryIdSchema,
  deliverySchema,
  eventsQuerySchema,
  rotateSecretSchema,
  webhookIdSchema,
  webhookInputSchema,
  webhookPatchSchema,
  webhookSchema,
  webhooksPageSchema,
} from '../../shared/index.js';
import type { OperationSpec, ParameterSpec } from './operations.js';

const webhookId: Record<string, ParameterSpec> = {
  id: { schema: webhookIdSchema, description: 'the subscription id (UUID)', required: true },
};

const DELIVERY_BODY =
  'Each delivery is `POST <url>` with `{"type", "timestamp", "data": {"record"}}` (the record as ' +
  '`GET /records/{id}` returns it after the change) and the Standard Webhooks headers `webhook-id` (the ' +
  'delivery id, the same on every attempt), `webhook-timestamp` and `webhook-signature` (`v1,<base64 ' +
  'HMAC-SHA256>` of `<id>.<timestamp>.<body>` under the secret). 2xx is delivered; anything else, or no ' +
  'answer within WEBHOOK_TIMEOUT_MS, is tried again after WEBHOOK_BACKOFF_MS, doubling up to an hour, for ' +
  'WEBHOOK_MAX_ATTEMPTS attempts, then failed; a 410 disables the subscription.';

/** `/webhooks` and `GET /events` (operations.ts lists these with the others). */
export const WEBHOOK_OPERATIONS: readonly OperationSpec[] = [
  {
    method: 'post',
    path: '/webhooks',
    operationId: 'createWebhook',
    tag: 'webhooks',
    summary: 'Subscribe a URL to record events',
    description:
      'The URL must be http(s) and its host must resolve to public addresses only (no loopback, private, ' +
      'link-local, unique-local, multicast or IPv4-mapped ones) unless WEBHOOK_ALLOW_PRIVATE_URLS=true; it is ' +
      'checked again before every send. The answer carries the signing secret, which no other answer shows. ' +
      DELIVERY_BODY,
    access: 'write',
    body: webhookInputSchema,
    responses: { 201: { description: 'subscribed; `secret` is shown this once', schema: createdWebhookSchema } },
    errors: ['VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/webhooks',
    operationId: 'listWebhooks',
    tag: 'webhooks',
    summary: 'Every subscription (never a secret)',
    access: 'keyed',
    responses: { 200: { description: 'oldest first', schema: webhooksPageSchema } },
  },
  {
    method: 'get',
    path: '/webhooks/{id}',
    operationId: 'getWebhook',
    tag: 'webhooks',
    summary: 'One subscription (never its secret)',
    access: 'keyed',
    pathParams: webhookId,
    responses: { 200: { description: 'the subscription', schema: webhookSchema } },
    errors: ['WEBHOOK_NOT_FOUND'],
  },
  {
    method: 'patch',
    path: '/webhooks/{id}',
    operationId: 'updateWebhook',
    tag: 'webhooks',
    summary: 'Change a subscription: url, events, categories, description, enabled',
    description: 'A new URL is checked as at creation. `enabled: true` turns a subscription a 410 disabled on again.',
    access: 'write',
    pathParams: webhookId,
    body: webhookPatchSchema,
    responses: { 200: { description: 'the subscription as changed', schema: webhookSchema } },
    errors: ['WEBHOOK_NOT_FOUND', 'VALIDATION_ERROR'],
  },
  {
    method: 'delete',
    path: '/webhooks/{id}',
    operationId: 'deleteWebhook',
    tag: 'webhooks',
    summary: 'Unsubscribe; pending deliveries are dropped',
    access: 'write',
    pathParams: webhookId,
    responses: { 204: { description: 'deleted, with its deliveries' } },
    errors: ['WEBHOOK_NOT_FOUND'],
  },
  {
    method: 'get',
    path: '/webhooks/{id}/deliveries',
    operationId: 'listWebhookDeliveries',
    tag: 'webhooks',
    summary: "A subscription's deliveries, newest first",
    description:
      'Delivered and failed deliveries are kept for WEBHOOK_RETENTION_HOURS after they ended. Follow ' +
      '`next_cursor` for older ones.',
    access: 'keyed',
    pathParams: webhookId,
    query: deliveriesQuerySchema,
    responses: { 200: { description: 'one page', schema: deliveriesPageSchema } },
    errors: ['WEBHOOK_NOT_FOUND', 'VALIDATION_ERROR'],
  },
  {
    method: 'post',
    path: '/webhooks/{id}/deliveries/{delivery_id}/redeliver',
    operationId: 'redeliverWebhook',
    tag: 'webhooks',
    summary: 'Send a delivery again, under the same webhook-id',
    description: 'The delivery is pending again with a fresh round of WEBHOOK_MAX_ATTEMPTS attempts.',
    access: 'write',
    pathParams: {
      ...webhookId,
      delivery_id: { schema: deliveryIdSchema, description: 'the delivery id (its webhook-id)', required: true },
    },
    responses: { 202: { description: 'pending again and queued', schema: deliverySchema } },
    errors: ['WEBHOOK_NOT_FOUND', 'DELIVERY_NOT_FOUND'],
  },
  {
    method: 'post',
    path: '/webhooks/{id}/rotate-secret',
    operationId: 'rotateWebhookSecret',
    tag: 'webhooks',
    summary: 'Replace the signing secret, the old one signing too for a grace period',
    description:
      'The answer carries the new secret (shown this once). Until `grace_seconds` (default a day) have passed, ' +
      'every delivery carries two signatures in `webhook-signature`, one under each secret, so the receiver can ' +
      'switch at its own pace; a verifier accepts a delivery when one of them matches. The body is optional.',
    access: 'write',
    pathParams: webhookId,
    body: rotateSecretSchema,
    responses: { 200: { description: 'the subscription and its new secret', schema: createdWebhookSchema } },
    errors: ['WEBHOOK_NOT_FOUND', 'VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/events',
    operationId: 'streamEvents',
    tag: 'webhooks',
    summary: 'Server-sent events: one per record change, live, resumable',
    description:
      'Each event has `id:` (a number that only grows), `event:` (`record.created`, `record.processed`, ' +
      '`record.failed`, `record.retried`) and `data:` `{record_id, category, source, from, to, at, attempt, ' +
      'error}`. With `Last-Event-ID` (or `?last_event_id=`) the stream starts with every stored event after ' +
      'that id, then goes on live, with no gap and no duplicate. A `: heartbeat` comment comes every ' +
      'EVENTS_HEARTBEAT_MS; a client that lets 1 MiB of events pile up unread is disconnected; past ' +
      'EVENTS_MAX_STREAMS open streams the answer is 503.',
    access: 'public',
    query: eventsQuerySchema,
    headers: {
      'Last-Event-ID': { schema: Joi.string().pattern(/^\d+$/), description: 'resume after this event id' },
    },
    responses: { 200: { description: 'the stream (text/event-stream)', contentType: 'text/event-stream' } },
    errors: ['VALIDATION_ERROR', 'SERVICE_UNAVAILABLE'],
  },
];
