import type Router from '@koa/router';
import type { Categories } from '../../shared/index.js';
import type { RouteDeps } from '../deps.js';

/** What a client may know of the categories file: never a processor's URL, path or secret. */
export function categoriesAnswer(categories: Categories) {
  return {
    items: [...categories.listed.values()].map((spec) => ({
      category: spec.category,
      description: spec.description,
      payload_schema: spec.payloadSchema,
      processor: spec.processor.kind,
    })),
    unknown_categories: categories.unknownCategories,
  };
}

export function registerCategoriesRoutes(router: Router, { config }: RouteDeps): void {
  const answer = categoriesAnswer(config.categories);
  router.get('/categories', (ctx) => {
    ctx.body = answer;
  });
}
