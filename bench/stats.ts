/**
 * Median, minimum and maximum of a series of measurements.
 *
 * @module
 */

/** A series summed up. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** How many values. */
  count: number;
}

/** Summarizes `values`; the median of an even count is the mean of two. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) {
    return { median: NaN, min: NaN, max: NaN, count: 0 };
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
  return {
    median,
    min: sorted[0],
    max: sorted[sorted.length - 1],
    count: sorted.length,
  };
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  return summarize(values).median;
}
