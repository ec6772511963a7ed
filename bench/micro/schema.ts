/** The JSON `npm run bench:micro` writes (zod: the test checks what the runner wrote). */
import { z } from 'zod';
import { MachineSchema } from '../../src/tools/bench/schema.js';

export const MicroResultSchema = z.object({
  benchmark: z.string(),
  case: z.string(),
  params: z.record(z.string(), z.union([z.string(), z.number()])),
  nsPerPacket: z.number().positive().finite(),
  packetsPerSecond: z.number().positive().finite(),
  marginPercent: z.number().nonnegative(),
  samples: z.number().int().positive(),
});

export const MicroRunSchema = z.object({
  kind: z.literal('vxtun-micro-bench'),
  version: z.literal(1),
  date: z.string(),
  quick: z.boolean(),
  machine: MachineSchema,
  results: z.array(MicroResultSchema).min(1),
});
export type MicroRun = z.infer<typeof MicroRunSchema>;
