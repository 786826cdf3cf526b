# A Python program that logs through the logging module (as applications
# do) and records every formatted record it wrote, base64 per line, so the
# test can compare the adapter's documents with what was really written.
import base64
import logging
import sys


class Recorder(logging.FileHandler):
    def __init__(self, path, records):
        super().__init__(path)
        self.records = records

    def emit(self, record):
        super().emit(record)
        self.records.write(base64.b64encode(self.format(record).encode()).decode() + "\n")
        self.records.flush()


class PaymentDeclined(Exception):
    pass


class LedgerCorrupt(RuntimeError):
    """A custom class whose name says nothing about being an exception."""


def lookup():
    return {}["customer-42"]


def charge():
    try:
        lookup()
    except KeyError as e:
        raise PaymentDeclined("card declined\nreason: insufficient funds\n  (issuer said 51)") from e


def settle():
    try:
        charge()
    except PaymentDeclined:
        raise LedgerCorrupt("ledger out of balance")  # implicit chaining


def group():
    raise ExceptionGroup("several failures", [ValueError("bad amount"), PaymentDeclined("nested\ntwo lines")])


def main():
    records = open(sys.argv[2], "w")
    h = Recorder(sys.argv[1], records)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("shop")
    log.addHandler(h)
    log.setLevel(logging.DEBUG)
    log.info("starting order %s", 42)
    log.warning("a message\nthat spans\nthree lines")
    for fn in (lookup, charge, settle, group):
        try:
            fn()
        except Exception:
            log.exception("%s failed", fn.__name__)
    try:
        raise LedgerCorrupt()
    except LedgerCorrupt:
        log.error("message-less exception", exc_info=True)
    log.critical("Traceback-looking text in a message:\nTraceback (most recent call last):\n  nothing")
    log.info("done")


main()
