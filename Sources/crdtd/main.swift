print("crdtd: not built yet")
