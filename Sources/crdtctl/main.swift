print("crdtctl: not built yet")
