print("CRDTBench: not written yet")
