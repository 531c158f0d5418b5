#!/usr/bin/env python3
"""Writes a FER2013-format CSV of random faces-free noise images, for load-time measurements.

    tools/make-fer2013-csv.py OUT.csv [ROWS]      (ROWS defaults to FER2013's 35,887)

Same header and layout as the real file (emotion,pixels,Usage; 48x48 = 2304 space-separated
pixel values; Training / PublicTest / PrivateTest in FER2013's proportions). Seeded, so the
file is the same every time. The real FER2013 is not redistributable and is not used here.
"""
import random
import sys


def main() -> None:
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 35887
    rng = random.Random(2013)
    with open(out, "w") as f:
        f.write("emotion,pixels,Usage\n")
        for i in range(rows):
            if i < rows * 0.8:
                usage = "Training"
            else:
                usage = "PublicTest" if i < rows * 0.9 else "PrivateTest"
            pixels = " ".join(str(rng.randrange(256)) for _ in range(2304))
            f.write(f"{rng.randrange(7)},{pixels},{usage}\n")


if __name__ == "__main__":
    main()
