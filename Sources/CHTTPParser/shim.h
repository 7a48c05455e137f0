#ifndef CRDTD_CHTTPPARSER_SHIM_H
#define CRDTD_CHTTPPARSER_SHIM_H
#include <http_parser.h>

/* http_parser keeps these in bit fields behind macros; plain accessors keep Swift away from both. */
static inline unsigned int crdtd_http_parser_errno(const http_parser *parser) {
    return parser->http_errno;
}

static inline unsigned int crdtd_http_parser_method(const http_parser *parser) {
    return parser->method;
}

static inline int crdtd_http_parser_is_upgrade(const http_parser *parser) {
    return parser->upgrade ? 1 : 0;
}

#endif
