/* The project's own stand-in for the part of libboundscheck's securec.h (openEuler's "bounds checking
 * function" library, not packaged in Debian) that Kmesh's bpf/deserialization_to_bpf_map calls:
 * memcpy_s and strcpy_s. Semantics and error codes are libboundscheck's, including what it does to the
 * destination on error (zeroed for memcpy_s, first byte cleared for strcpy_s), so Kmesh's deserializer
 * behaves here as on a Kmesh node. Kmesh ignores every return value of these calls; the codes matter to
 * the unit test and to anyone reading a failure. */
#ifndef KMESH_E2E_THIRD_PARTY_KMESH_SECUREC_SECUREC_H_
#define KMESH_E2E_THIRD_PARTY_KMESH_SECUREC_SECUREC_H_

#include <errno.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int errno_t;

/* libboundscheck's error codes (securec.h). The *_AND_RESET forms say the destination was reset. */
#ifndef EOK
#define EOK 0
#endif
#define EINVAL_AND_RESET 150   /* EINVAL | 128 */
#define ERANGE_AND_RESET 162   /* ERANGE | 128 */
#define EOVERLAP_AND_RESET 182 /* 54 | 128 */

/* Largest destination either function accepts (libboundscheck's default, 2 GiB - 1). */
#define SECUREC_MEM_MAX_LEN 0x7fffffffUL
#define SECUREC_STRING_MAX_LEN 0x7fffffffUL

/* Copies `count` bytes of `src` into `dest` (capacity `dest_max`).
 *   EOK                 copied (also when count is 0, or dest == src)
 *   ERANGE              dest_max is 0 or above SECUREC_MEM_MAX_LEN (dest untouched)
 *   EINVAL              dest is NULL
 *   EINVAL_AND_RESET    src is NULL: dest[0..dest_max) zeroed
 *   ERANGE_AND_RESET    count > dest_max: dest[0..dest_max) zeroed
 *   EOVERLAP_AND_RESET  the two ranges overlap: dest[0..dest_max) zeroed */
errno_t memcpy_s(void *dest, size_t dest_max, const void *src, size_t count);

/* Copies the string `src` with its terminating NUL into `dest` (capacity `dest_max`).
 *   EOK                 copied (also when dest == src)
 *   ERANGE              dest_max is 0 or above SECUREC_STRING_MAX_LEN (dest untouched)
 *   EINVAL              dest is NULL
 *   EINVAL_AND_RESET    src is NULL: dest[0] = '\0'
 *   ERANGE_AND_RESET    strlen(src) + 1 > dest_max: dest[0] = '\0'
 *   EOVERLAP_AND_RESET  the string overlaps dest: dest[0] = '\0' */
errno_t strcpy_s(char *dest, size_t dest_max, const char *src);

#ifdef __cplusplus
}
#endif

#endif /* KMESH_E2E_THIRD_PARTY_KMESH_SECUREC_SECUREC_H_ */
