// lab: from=v14 TM=32 TN=64 R=32 C=8 as v14 with 32x8 accumulators per lane (2 vec4 per row)
