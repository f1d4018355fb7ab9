import { useEffect, useRef } from 'react';

export interface BarSeries {
  name: string;
  values: number[];
  color?: string;
}

type Chart = { setOption(option: object, notMerge?: boolean): void; resize(): void; dispose(): void };

/**
 * Stacked bars drawn by ECharts (SVG renderer, loaded lazily so the console's first load
 * stays small). `label` describes the chart for assistive technology.
 */
export function StackedBars({
  categories,
  series,
  label,
  height = 160,
}: {
  categories: string[];
  series: BarSeries[];
  label: string;
  height?: number;
}) {
  const element = useRef<HTMLDivElement>(null);
  const chart = useRef<Chart | undefined>(undefined);
  const latest = useRef({ categories, series });
  latest.current = { categories, series };

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | undefined;
    import('./echarts-setup').then(({ echarts }) => {
      if (disposed || element.current === null) return;
      chart.current = echarts.init(element.current, undefined, { renderer: 'svg' }) as unknown as Chart;
      chart.current.setOption(optionFor(latest.current.categories, latest.current.series));
      observer = new ResizeObserver(() => chart.current?.resize());
      observer.observe(element.current);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      chart.current?.dispose();
      chart.current = undefined;
    };
  }, []);

  useEffect(() => {
    chart.current?.setOption(optionFor(categories, series), true);
  }, [categories, series]);

  return <div ref={element} className="chart" role="img" aria-label={label} style={{ height }} />;
}

function optionFor(categories: string[], series: BarSeries[]): object {
  const muted = getComputedStyle(document.documentElement).getPropertyValue('--muted').trim() || '#5f6b7a';
  return {
    animation: false,
    grid: { left: 36, right: 8, top: series.length > 1 ? 28 : 8, bottom: 24 },
    tooltip: { trigger: 'axis' },
    legend: series.length > 1 ? { top: 0, textStyle: { color: muted } } : { show: false },
    xAxis: { type: 'category', data: categories, axisLabel: { color: muted, hideOverlap: true } },
    yAxis: { type: 'value', minInterval: 1, axisLabel: { color: muted } },
    series: series.map((s) => ({
      name: s.name,
      type: 'bar',
      stack: 'total',
      data: s.values,
      ...(s.color ? { itemStyle: { color: s.color } } : {}),
    })),
  };
}
