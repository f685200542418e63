import evergreen from './evergreen';
import koha from './koha';
import native from './native';
import type { SourceAdapter } from './sourceApi';

/** The source adapters, by id (the profile's `source:`), sorted. */
export const sources: ReadonlyMap<string, SourceAdapter> = new Map<string, SourceAdapter>([
  ['evergreen', evergreen],
  ['koha', koha],
  ['native', native],
]);
