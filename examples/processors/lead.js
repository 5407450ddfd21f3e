// A module processor: the default export gets the record and a context, and returns its result.
// An error with `permanent: true` fails the record at once; any other error is retried.

const FREE_MAIL = new Set(['gmail.com', 'yahoo.com', 'outlook.com', 'hotmail.com']);

export default async function scoreLead(record, ctx) {
  const { email, company_size: size = 1 } = record.payload;
  const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
  if (FREE_MAIL.has(domain)) {
    throw Object.assign(new Error(`${domain} is a free mail domain: not a company lead`), { permanent: true });
  }
  // a real processor would call a CRM here, passing ctx.signal so a timeout or shutdown stops it
  const score = Math.min(100, Math.round(Math.log10(size + 1) * 25));
  const tier = score >= 60 ? 'enterprise' : score >= 30 ? 'mid-market' : 'small';
  ctx.log.info({ domain, score, attempt: ctx.attempt }, 'lead scored');
  return { domain, score, tier };
}
