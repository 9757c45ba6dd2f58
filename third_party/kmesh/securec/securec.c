/* memcpy_s and strcpy_s with libboundscheck's semantics (see securec.h). */
#include "securec.h"

#include <stdint.h>
#include <string.h>

static int overlaps(const void *a, size_t a_len, const void *b, size_t b_len) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return x < y + b_len && y < x + a_len;
}

errno_t memcpy_s(void *dest, size_t dest_max, const void *src, size_t count) {
  if (dest_max == 0 || dest_max > SECUREC_MEM_MAX_LEN) return ERANGE;
  if (dest == NULL) return EINVAL;
  if (src == NULL) {
    memset(dest, 0, dest_max);
    return EINVAL_AND_RESET;
  }
  if (count > dest_max) {
    memset(dest, 0, dest_max);
    return ERANGE_AND_RESET;
  }
  if (count == 0 || dest == src) return EOK;
  if (overlaps(dest, count, src, count)) {
    memset(dest, 0, dest_max);
    return EOVERLAP_AND_RESET;
  }
  memcpy(dest, src, count);
  return EOK;
}

errno_t strcpy_s(char *dest, size_t dest_max, const char *src) {
  if (dest_max == 0 || dest_max > SECUREC_STRING_MAX_LEN) return ERANGE;
  if (dest == NULL) return EINVAL;
  if (src == NULL) {
    dest[0] = '\0';
    return EINVAL_AND_RESET;
  }
  /* The length is measured within dest_max only, as libboundscheck does: an unterminated source longer
   * than the destination is never read past dest_max bytes. */
  const size_t len_with_nul = strnlen(src, dest_max) + 1;
  if (len_with_nul > dest_max) {
    dest[0] = '\0';
    return ERANGE_AND_RESET;
  }
  if (dest == src) return EOK;
  if (overlaps(dest, len_with_nul, src, len_with_nul)) {
    dest[0] = '\0';
    return EOVERLAP_AND_RESET;
  }
  memcpy(dest, src, len_with_nul);
  return EOK;
}
