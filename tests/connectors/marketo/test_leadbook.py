"""The lead book: the leads one Marketo pull looked up, in a temporary SQLite file."""

from __future__ import annotations

from pathlib import Path

from connectors.marketo.leadbook import LeadBook, LeadDetails


def test_the_book_gives_back_what_it_was_given_and_omits_leads_it_never_held() -> None:
    given: dict[int, LeadDetails] = {
        lead: (f"lead{lead}@example.com", {"first_name": f"Ann {lead}", "company": "Acme, Inc."})
        for lead in range(1, 1001)
    }
    given[5000] = (None, {})  # a lead Marketo did not return
    given[5001] = (None, {"company": "Ünïcode GmbH"})  # a lead without an email
    given[10**40] = (None, {})  # a lead id beyond 64 bits (an activity may carry one)
    with LeadBook() as book:
        book.put(given)
        book.put({7: ("new7@example.com", {})})  # looked up again: the newer answer stands
        # More ids than one query takes, some the book never held.
        held = book.get([*range(1, 1101), 5000, 5001, 10**40, 10**40 + 1])
    assert held == {**given, 7: ("new7@example.com", {})}


def test_closing_the_book_removes_its_file_once() -> None:
    book = LeadBook()
    book.put({1: ("a@example.com", {})})
    assert Path(book.path).is_file()
    book.close()
    assert not Path(book.path).exists()
    book.close()  # again: nothing
