"""The lead book: the leads one Marketo pull looked up, in a temporary SQLite database."""

from __future__ import annotations

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


def test_a_book_larger_than_its_page_cache_still_answers_and_closes_twice() -> None:
    given: dict[int, LeadDetails] = {
        lead: (f"lead{lead}@example.com", {"title": "VP " + "x" * 100}) for lead in range(60_000)
    }
    book = LeadBook()
    for start in range(0, len(given), 3000):  # a page's lookups at a time, as a pull does
        book.put({k: given[k] for k in range(start, start + 3000)})
    assert book.get([0, 29_999, 59_999, 60_000]) == {k: given[k] for k in (0, 29_999, 59_999)}
    book.close()
    book.close()  # again: nothing
