"""GSM8K-format word problems, generated so the demo never depends on data we cannot ship.

Every computing line carries a GSM8K calculator annotation (``48/2 = <<48/2=24>>24``) that is
evaluated here with exact fractions before it is written, and each template also computes its
answer directly; the two must agree, so a wrong template fails loudly instead of teaching a
model wrong arithmetic.
"""

from __future__ import annotations

import ast
import operator
import random
from collections.abc import Callable
from fractions import Fraction

PEOPLE = (
    ("Amara", "she"), ("Ben", "he"), ("Carlos", "he"), ("Dalia", "she"), ("Elif", "she"),
    ("Farid", "he"), ("Greta", "she"), ("Hiro", "he"), ("Ines", "she"), ("Jonah", "he"),
    ("Kemi", "she"), ("Luca", "he"), ("Mei", "she"), ("Nikhil", "he"), ("Olga", "she"),
    ("Pablo", "he"), ("Quinn", "she"), ("Rafael", "he"), ("Sana", "she"), ("Tomas", "he"),
    ("Uma", "she"), ("Viktor", "he"), ("Wren", "she"), ("Yusuf", "he"), ("Zara", "she"),
)
_PRONOUNS = {"she": ("she", "her", "her", "herself"), "he": ("he", "him", "his", "himself")}
_ITEMS = ("notebooks", "pencils", "apples", "oranges", "stickers", "candles", "mugs", "socks",
          "comic books", "plant pots", "batteries", "paintbrushes")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expr: str) -> Fraction:
    """Exact value of a calculator annotation, so 7/2 can never be silently rounded to 3."""
    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        raise ValueError(f"not a calculator expression: {expr!r}")
    return ev(ast.parse(expr, mode="eval").body)


class _Work:
    """The answer being written; each line is checked as it is added, never trusted."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.last: int | None = None

    def step(self, sentence: str, expr: str, unit: str = "") -> int:
        value = evaluate(expr)
        if value.denominator != 1 or value < 0:
            raise AssertionError(f"template produced a non-whole step {expr} = {value}")
        self.last = int(value)
        shown = "".join(f" {c} " if c in "+-*/" else c for c in expr)
        self.lines.append(sentence.format(f"{shown} = {unit}<<{expr}={self.last}>>{self.last}"))
        return self.last

    def finish(self, expected: int) -> str:
        if self.last != expected:
            raise AssertionError(f"worked steps end at {self.last}, direct computation gives {expected}")
        return "\n".join([*self.lines, f"#### {expected}"])


def _person(rng: random.Random) -> tuple[str, str, str, str, str]:
    name, key = rng.choice(PEOPLE)
    return (name, *_PRONOUNS[key])


def _shopping(rng: random.Random) -> tuple[str, str]:
    name, he, _, _, _ = _person(rng)
    item1, item2 = rng.sample(_ITEMS, 2)
    n1, p1, n2, p2 = rng.randint(2, 9), rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 12)
    cost = n1 * p1 + n2 * p2
    bill = next(b for b in (50, 100, 200, 500) if b >= cost)
    q = (f"{name} buys {n1} {item1} for ${p1} each and {n2} {item2} for ${p2} each. "
         f"{he.capitalize()} pays with a ${bill} bill. How much change does {he} get back?")
    w = _Work()
    a = w.step(f"The {item1} cost {{}}.", f"{n1}*{p1}", "$")
    b = w.step(f"The {item2} cost {{}}.", f"{n2}*{p2}", "$")
    t = w.step("Altogether the items cost {}.", f"{a}+{b}", "$")
    w.step(f"{name} gets back {{}} in change.", f"{bill}-{t}", "$")
    return q, w.finish(bill - cost)


def _sharing(rng: random.Random) -> tuple[str, str]:
    name, he, _, _, himself = _person(rng)
    item = rng.choice(("stickers", "marbles", "cookies", "crayons", "trading cards", "seashells"))
    friends, each, kept = rng.randint(3, 8), rng.randint(4, 12), rng.randint(2, 10)
    given = rng.randint(1, each - 1)
    total = friends * each + kept
    q = (f"{name} has {total} {item}. {he.capitalize()} keeps {kept} for {himself} and shares the rest "
         f"equally among {friends} friends. Each friend then gives {given} of their {item} to a younger "
         f"sibling. How many {item} does each friend have left?")
    w = _Work()
    shared = w.step(f"{name} shares {{}} {item}.", f"{total}-{kept}")
    got = w.step(f"Each friend gets {{}} {item}.", f"{shared}/{friends}")
    w.step(f"After giving some away, each friend has {{}} {item} left.", f"{got}-{given}")
    return q, w.finish((total - kept) // friends - given)


def _factory(rng: random.Random) -> tuple[str, str]:
    item = rng.choice(("toy cars", "water bottles", "wooden chairs", "loaves of bread", "T-shirts"))
    rate, hours, days, bad = rng.randint(5, 40), rng.randint(4, 10), rng.randint(2, 7), rng.randint(2, 12)
    q = (f"A machine makes {rate} {item} every hour and runs for {hours} hours a day. Each day {bad} of "
         f"the {item} fail inspection and are thrown away. How many good {item} does the machine make "
         f"in {days} days?")
    w = _Work()
    made = w.step(f"The machine makes {{}} {item} a day.", f"{rate}*{hours}")
    good = w.step("Of those, {} pass inspection each day.", f"{made}-{bad}")
    w.step(f"In {days} days it makes {{}} good {item}.", f"{good}*{days}")
    return q, w.finish((rate * hours - bad) * days)


def _ages(rng: random.Random) -> tuple[str, str]:
    (a_name, _), (b_name, _), (c_name, _) = rng.sample(PEOPLE, 3)
    age, times = rng.randint(4, 20), rng.choice((2, 3))
    younger = rng.randint(2, age * times - 1)
    word = "twice" if times == 2 else "three times"
    q = (f"{a_name} is {age} years old. {b_name} is {word} as old as {a_name}, and {c_name} is {younger} "
         f"years younger than {b_name}. What is the sum of their three ages?")
    w = _Work()
    b = w.step(f"{b_name} is {{}} years old.", f"{age}*{times}")
    c = w.step(f"{c_name} is {{}} years old.", f"{b}-{younger}")
    w.step("Together they are {} years old.", f"{age}+{b}+{c}")
    return q, w.finish(age + 2 * age * times - younger)


def _savings(rng: random.Random) -> tuple[str, str]:
    name, he, _, _, _ = _person(rng)
    thing = rng.choice(("bicycle", "telescope", "guitar", "tablet", "pair of skates", "tent"))
    monthly, months, weekly, weeks = rng.randint(5, 30), rng.randint(2, 6), rng.randint(4, 25), rng.randint(2, 12)
    price = monthly * months + weekly * weeks
    q = (f"{name} wants a {thing} that costs ${price}. {he.capitalize()} saved ${monthly} in each of the "
         f"last {months} months, and from now on {he} will save ${weekly} a week. How many weeks will it "
         f"take {name} to have enough money?")
    w = _Work()
    saved = w.step(f"{name} has already saved {{}}.", f"{monthly}*{months}", "$")
    left = w.step(f"{he.capitalize()} still needs {{}}.", f"{price}-{saved}", "$")
    w.step("Saving weekly, that takes {} weeks.", f"{left}/{weekly}")
    return q, w.finish(weeks)


def _sales(rng: random.Random) -> tuple[str, str]:
    name, _, _, _, _ = _person(rng)
    item = rng.choice(("cupcakes", "bracelets", "lemonade cups", "raffle tickets", "bookmarks"))
    m1, m2, m3 = rng.choice((("March", "April", "May"), ("June", "July", "August"), ("October", "November", "December")))
    first, extra = 2 * rng.randint(10, 60), rng.randint(3, 25)
    q = (f"{name} sold {first} {item} in {m1} and half as many in {m2}. In {m3} {name} sold {extra} more "
         f"{item} than in {m2}. How many {item} did {name} sell in the three months?")
    w = _Work()
    second = w.step(f"In {m2}, {name} sold {{}} {item}.", f"{first}/2")
    third = w.step(f"In {m3}, {name} sold {{}} {item}.", f"{second}+{extra}")
    w.step(f"Altogether {name} sold {{}} {item}.", f"{first}+{second}+{third}")
    return q, w.finish(first + first // 2 + first // 2 + extra)


def _baking(rng: random.Random) -> tuple[str, str]:
    (name, _), (friend, _) = rng.sample(PEOPLE, 2)
    trays, per_tray, bag = rng.randint(2, 8), rng.randint(6, 24), rng.randint(3, 8)
    total = trays * per_tray
    eaten = total % bag or bag
    q = (f"{name} bakes {trays} trays of cookies with {per_tray} cookies on each tray. {name} and {friend} "
         f"eat {eaten} of them, and {name} packs the rest into bags of {bag}. "
         f"How many bags does {name} fill?")
    w = _Work()
    baked = w.step(f"{name} bakes {{}} cookies.", f"{trays}*{per_tray}")
    rest = w.step("After the snack, {} cookies are left.", f"{baked}-{eaten}")
    w.step(f"{name} fills {{}} bags.", f"{rest}/{bag}")
    return q, w.finish((total - eaten) // bag)


def _travel(rng: random.Random) -> tuple[str, str]:
    name, he, _, _, _ = _person(rng)
    v1, h1, v2, h2 = rng.randint(30, 70), rng.randint(2, 5), rng.randint(20, 65), rng.randint(2, 4)
    trip = v1 * h1 + v2 * h2 + rng.randint(10, 150)
    q = (f"{name} is on a {trip}-mile road trip. {he.capitalize()} drives at {v1} miles per hour for {h1} "
         f"hours, then at {v2} miles per hour for {h2} hours. How many miles of the trip are left?")
    w = _Work()
    a = w.step(f"First {he} drives {{}} miles.", f"{v1}*{h1}")
    b = w.step(f"Then {he} drives {{}} miles.", f"{v2}*{h2}")
    done = w.step(f"So far {he} has driven {{}} miles.", f"{a}+{b}")
    w.step("There are {} miles left.", f"{trip}-{done}")
    return q, w.finish(trip - v1 * h1 - v2 * h2)


def _discount(rng: random.Random) -> tuple[str, str]:
    name, he, _, _, _ = _person(rng)
    thing = rng.choice(("jacket", "lamp", "backpack", "board game", "pair of boots", "kettle"))
    price, pct, count = 20 * rng.randint(2, 15), rng.choice((10, 20, 25, 50)), rng.randint(2, 5)
    q = (f"A {thing} normally costs ${price}. This week it is on sale for {pct}% off. {name} buys {count} "
         f"of them as gifts. How much does {he} pay in total?")
    w = _Work()
    off = w.step("The discount is {} per item.", f"{price}*{pct}/100", "$")
    sale = w.step("The sale price is {}.", f"{price}-{off}", "$")
    w.step(f"For {count} items {name} pays {{}}.", f"{sale}*{count}", "$")
    return q, w.finish(price * (100 - pct) // 100 * count)


def _garden(rng: random.Random) -> tuple[str, str]:
    name, _, _, _, _ = _person(rng)
    den, word = rng.choice(((2, "half"), (3, "a third"), (4, "a quarter")))
    rows, per_row = den * rng.randint(1, 6), rng.randint(4, 15)
    crop, other = rng.sample(("tomato", "pepper", "bean", "squash", "lettuce", "carrot"), 2)
    q = (f"{name} plants {rows} rows of seedlings with {per_row} seedlings in each row. {word.capitalize()} "
         f"of the seedlings are {crop} plants and the rest are {other} plants. How many {other} plants "
         f"are there?")
    w = _Work()
    total = w.step("There are {} seedlings.", f"{rows}*{per_row}")
    first = w.step(f"Of these, {{}} are {crop} plants.", f"{total}/{den}")
    w.step(f"That leaves {{}} {other} plants.", f"{total}-{first}")
    return q, w.finish(rows * per_row - rows * per_row // den)


def _reading(rng: random.Random) -> tuple[str, str]:
    name, he, _, _, _ = _person(rng)
    fast, days, slow, more = rng.randint(10, 40), rng.randint(2, 7), rng.randint(5, 30), rng.randint(2, 9)
    pages = fast * days + slow * more
    q = (f"A book has {pages} pages. {name} reads {fast} pages a day for {days} days. After that {he} "
         f"reads {slow} pages a day. How many more days does it take {name} to finish the book?")
    w = _Work()
    read = w.step(f"In the first {days} days {name} reads {{}} pages.", f"{fast}*{days}")
    left = w.step("That leaves {} pages.", f"{pages}-{read}")
    w.step(f"At the slower pace {he} needs {{}} more days.", f"{left}/{slow}")
    return q, w.finish(more)


def _wages(rng: random.Random) -> tuple[str, str]:
    name, he, _, _, _ = _person(rng)
    wage, daily, saturday = rng.randint(9, 30), rng.randint(3, 8), rng.randint(2, 6)
    q = (f"{name} earns ${wage} an hour at a bakery. {he.capitalize()} works {daily} hours on each of the "
         f"5 weekdays and {saturday} hours on Saturday. How much does {name} earn in one week?")
    w = _Work()
    weekday = w.step(f"On weekdays {he} works {{}} hours.", f"{daily}*5")
    hours = w.step(f"In the whole week {he} works {{}} hours.", f"{weekday}+{saturday}")
    w.step(f"{name} earns {{}}.", f"{hours}*{wage}", "$")
    return q, w.finish((5 * daily + saturday) * wage)


def _tickets(rng: random.Random) -> tuple[str, str]:
    adult, child, adults, kids = rng.randint(8, 30), rng.randint(3, 15), rng.randint(2, 4), rng.randint(2, 6)
    parking = rng.randint(3, 20)
    place = rng.choice(("zoo", "aquarium", "science museum", "water park", "county fair"))
    q = (f"Tickets to the {place} cost ${adult} for adults and ${child} for children. A family of {adults} "
         f"adults and {kids} children visits, and parking costs ${parking}. How much does the visit cost?")
    w = _Work()
    a = w.step("The adult tickets cost {}.", f"{adults}*{adult}", "$")
    c = w.step("The children's tickets cost {}.", f"{kids}*{child}", "$")
    w.step("With parking, the visit costs {}.", f"{a}+{c}+{parking}", "$")
    return q, w.finish(adults * adult + kids * child + parking)


TEMPLATES: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    _shopping, _sharing, _factory, _ages, _savings, _sales, _baking, _travel, _discount, _garden,
    _reading, _wages, _tickets,
)


def gsm8k_problem(rng: random.Random) -> dict[str, str]:
    """One verified problem as a GSM8K JSONL record (``question``, ``answer``)."""
    question, answer = rng.choice(TEMPLATES)(rng)
    return {"question": question, "answer": answer}
