import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface ChartSeries {
  label: string;
  /** a CSS colour; each series also has its own dash pattern, so colour is never the only difference */
  stroke: string;
  dash?: number[];
}

interface Props {
  title: string;
  /** what a screen reader hears instead of the drawing */
  summary: string;
  /** bucket starts, epoch seconds */
  xs: number[];
  ys: Array<Array<number | null>>;
  series: ChartSeries[];
  unit: string;
  /** mark each value: for series with gaps, where a lone value has no line to be drawn on */
  points?: boolean;
}

const HEIGHT = 240;

/** A uPlot line chart that follows its container's width. */
export function Chart({ title, summary, xs, ys, series, unit, points = false }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labels = series.map((s) => s.label).join('|');

  useEffect(() => {
    const el = box.current!;
    const options: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: HEIGHT,
      series: [
        { label: 'Time' },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 2,
          dash: s.dash,
          spanGaps: false,
          points: points ? { show: true, size: 5, fill: s.stroke } : undefined,
        })),
      ],
      axes: [{ stroke: '#333' }, { stroke: '#333', label: unit, size: 60 }],
      scales: { x: { time: true } },
      legend: { live: true },
    };
    plot.current = new uPlot(options, [xs, ...ys] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() =>
      plot.current?.setSize({ width: Math.max(280, el.clientWidth), height: HEIGHT }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // a new chart only when its series change; new data is set below
  }, [labels, unit]);

  useEffect(() => {
    plot.current?.setData([xs, ...ys] as uPlot.AlignedData);
  }, [xs, ys]);

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${summary}`} />
    </figure>
  );
}
