// lab: from=v14 TM=64 TN=32 R=64 C=4 as v14 with 64x4 accumulators per lane
