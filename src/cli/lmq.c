#include "lmq.h"
#include <stdio.h>
int main(void) { printf("lmq %s\n", LMQ_VERSION_STRING); return 0; }
