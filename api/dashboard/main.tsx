import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { Failures } from './failures.js';
import { KeyDialog } from './key-dialog.js';
import { Overview } from './overview.js';
import { RecordPage } from './record.js';
import { Records } from './records.js';
import { href, useRoute } from './router.js';

const PAGES = [
  { path: '/', label: 'Overview' },
  { path: '/records', label: 'Records' },
  { path: '/failures', label: 'Failures' },
];

function App() {
  const route = useRoute();
  const record = /^\/records\/([^/]+)$/.exec(route.path);
  const section = record ? '/records' : route.path;
  let page;
  if (record) page = <RecordPage id={decodeURIComponent(record[1]!)} />;
  else if (route.path === '/records') page = <Records route={route} />;
  else if (route.path === '/failures') page = <Failures route={route} />;
  else page = <Overview route={route} />;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header>
        <p class="brand">workflow-service</p>
        <nav aria-label="Dashboard">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={href(p.path)} aria-current={section === p.path ? 'page' : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <KeyDialog />
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
