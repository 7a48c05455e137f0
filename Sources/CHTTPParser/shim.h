#ifndef CRDTD_CHTTPPARSER_SHIM_H
#define CRDTD_CHTTPPARSER_SHIM_H
#include <http_parser.h>
#endif
