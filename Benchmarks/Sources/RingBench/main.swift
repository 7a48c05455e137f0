print("RingBench: not written yet")
