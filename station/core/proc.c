/* proc: see proc.h. */
#include "core/proc.h"

#include <malloc.h>

int proc_tune_malloc(void)
{
	/* mallopt returns 1 on success */
	return mallopt(M_TRIM_THRESHOLD, PROC_TRIM_BYTES) == 1 ? 0 : -1;
}
