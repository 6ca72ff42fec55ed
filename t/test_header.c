/* The public header compiles alone as strict C99 (see Makefile.am flags). */
#include "lmq.h"
#include <criterion/criterion.h>

Test(header, strerror_covers_every_code) {
  cr_assert_str_eq(lmq_strerror(LMQ_OK), "success");
  for (int c = LMQ__ERR_LAST; c < 0; c++)
    cr_assert_str_neq(lmq_strerror(c), "unknown error", "code %d", c);
  cr_assert_str_eq(lmq_strerror(-9999), "unknown error");
}
