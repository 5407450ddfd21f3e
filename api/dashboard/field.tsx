import type { ComponentChildren } from 'preact';
import { localInput } from './format.js';

let next = 0;
const ids = new Map<string, string>();

/** A stable id per form and field name, so that a label names exactly its control. */
function idFor(form: string, name: string): string {
  const key = `${form}.${name}`;
  let id = ids.get(key);
  if (!id) ids.set(key, (id = `f${++next}-${name}`));
  return id;
}

interface FieldProps {
  form: string;
  name: string;
  label: string;
}

export function TextField({
  form,
  name,
  label,
  value,
  type = 'text',
  maxLength,
}: FieldProps & {
  value: string;
  type?: 'text' | 'datetime-local';
  maxLength?: number;
}) {
  const id = idFor(form, name);
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {type === 'text' ? (
        <input id={id} name={name} type="text" defaultValue={value} maxLength={maxLength} />
      ) : (
        <input id={id} name={name} type="datetime-local" defaultValue={value} />
      )}
    </div>
  );
}

/** The From and To fields of a time range, shown in local time; `from` and `to` are ISO instants or null. */
export function DateRangeFields({ form, from, to }: { form: string; from: string | null; to: string | null }) {
  return (
    <>
      <TextField form={form} name="from" label="From" type="datetime-local" value={localInput(from)} />
      <TextField form={form} name="to" label="To" type="datetime-local" value={localInput(to)} />
    </>
  );
}

export function SelectField({
  form,
  name,
  label,
  value,
  options,
}: FieldProps & {
  value: string;
  /** [value, text] */
  options: Array<[string, string]>;
}) {
  const id = idFor(form, name);
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} name={name}>
        {options.map(([v, text]) => (
          <option value={v} selected={v === value}>
            {text}
          </option>
        ))}
      </select>
    </div>
  );
}

export function Actions({ children }: { children: ComponentChildren }) {
  return <div class="field actions">{children}</div>;
}
