"""MATH-format competition problems (HF export layout), each answer checked with sympy.

Problems are built backwards from a chosen answer, then the answer is recomputed by sympy from
the problem's own objects (solve the equation, count the divisors, ...) and must match, so the
``\\boxed{}`` value a model is scored against is right by construction *and* by computation.
Levels rise with the number of steps and the size of the numbers, as in MATH.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence

import sympy

Problem = tuple[str, int, str, str, sympy.Expr]  # problem, level, type, solution, answer

_X, _Y = sympy.symbols("x y")
_WORDS = ("BANANA", "PEPPER", "LEVEL", "COOKIE", "PUZZLE", "RABBIT", "BALLOON", "LETTER", "GARDEN",
          "PLANET", "MISSISSIPPI", "TOMATO", "COFFEE", "KITTEN", "BUTTER", "CIRCLE", "ORANGE", "STREET")


def _check(answer: sympy.Expr, computed: object) -> sympy.Expr:
    if sympy.simplify(sympy.sympify(computed) - answer) != 0:
        raise AssertionError(f"constructed answer {answer} but sympy computes {computed}")
    return answer


def _num(v: object) -> str:
    """A number as MATH writes it: integers plain, other rationals as ``\\frac{p}{q}``."""
    r = sympy.Rational(v)
    if r.q == 1:
        return str(r.p)
    return f"{'-' if r < 0 else ''}\\frac{{{abs(r.p)}}}{{{r.q}}}"


def _combo(terms: Sequence[tuple[int, str]]) -> str:
    """``[(2, "x^2"), (-1, "x"), (3, "")]`` -> ``2x^2 - x + 3``: coefficients of 1 dropped, signs merged."""
    out = ""
    for c, mono in terms:
        if c == 0:
            continue
        body = (str(abs(c)) if abs(c) != 1 or not mono else "") + mono
        out += (("-" if c < 0 else "") + body) if not out else ((" - " if c < 0 else " + ") + body)
    return out or "0"


def _poly(coeffs: Sequence[int]) -> str:
    deg = len(coeffs) - 1
    return _combo([(c, "" if deg - i == 0 else "x" if deg - i == 1 else f"x^{deg - i}") for i, c in enumerate(coeffs)])


def _nonzero(rng: random.Random, lo: int, hi: int) -> int:
    return rng.choice([v for v in range(lo, hi + 1) if v != 0])


def _linear_one_side(rng: random.Random) -> Problem:
    a, x, b = rng.randint(2, 9), rng.randint(-12, 15), _nonzero(rng, -20, 20)
    c = a * x + b
    x_sol = _check(sympy.Integer(x), sympy.solve(sympy.Eq(a * _X + b, c), _X)[0])
    move = f"Subtracting ${b}$ from" if b > 0 else f"Adding ${-b}$ to"
    sol = (f"{move} both sides gives ${a}x = {c - b}$. Dividing both sides by ${a}$ gives "
           f"$x = \\boxed{{{_num(x_sol)}}}$.")
    return f"Solve for $x$: ${_poly([a, b])} = {c}$.", 1, "Algebra", sol, x_sol


def _linear_two_sides(rng: random.Random) -> Problem:
    a, c = rng.sample([v for v in range(-9, 10) if v != 0], 2)
    b, d = _nonzero(rng, -20, 20), _nonzero(rng, -20, 20)
    x = sympy.Rational(d - b, a - c)
    x_sol = _check(x, sympy.solve(sympy.Eq(a * _X + b, c * _X + d), _X)[0])
    tail = "" if x.q == 1 else " Express your answer as a common fraction."
    sol = (f"Moving the $x$ terms to the left and the constants to the right gives "
           f"${_poly([a - c, 0])} = {d - b}$, so $x = \\boxed{{{_num(x_sol)}}}$.")
    return f"Solve for $x$: ${_poly([a, b])} = {_poly([c, d])}$.{tail}", 2 if x.q == 1 else 3, "Algebra", sol, x_sol


def _evaluate_function(rng: random.Random) -> Problem:
    coeffs = [_nonzero(rng, -5, 6), rng.randint(-9, 9), rng.randint(-10, 10)]
    n = _nonzero(rng, -6, 7)
    parts = [coeffs[0] * n * n, coeffs[1] * n, coeffs[2]]
    value = _check(sympy.Integer(sum(parts)), sympy.Poly(coeffs, _X).eval(n))
    shown = _poly(coeffs).replace("x", f"({n})")
    sol = (f"Substituting $x = {n}$ gives $f({n}) = {shown} = {_combo([(p, '') for p in parts if p] or [(0, '')])}"
           f" = \\boxed{{{value}}}$.")
    prob = f"If $f(x) = {_poly(coeffs)}$, what is the value of $f({n})$?"
    return prob, 1 if n > 0 else 2, "Algebra", sol, value


def _quadratic_roots(rng: random.Random) -> Problem:
    k = rng.choice((1, 1, 2, 3, -1, -2))
    r1, r2 = rng.sample([r for r in range(-9, 10) if r != 0], 2)
    coeffs = [k, -k * (r1 + r2), k * r1 * r2]
    roots = sympy.solve(sympy.Poly(coeffs, _X).as_expr(), _X)
    if rng.random() < 0.5:
        what, value, computed, formula = "sum", sympy.Integer(r1 + r2), sum(roots), "-\\frac{b}{a}"
    else:
        what, value, computed, formula = "product", sympy.Integer(r1 * r2), sympy.Mul(*roots), "\\frac{c}{a}"
    ans = _check(value, computed)
    sol = (f"The equation factors as ${'' if k == 1 else '-' if k == -1 else k}(x {'-' if r1 >= 0 else '+'} {abs(r1)})"
           f"(x {'-' if r2 >= 0 else '+'} {abs(r2)}) = 0$, so the solutions are $x = {r1}$ and $x = {r2}$. "
           f"(Equivalently, by Vieta's formulas the {what} of the roots is ${formula}$.) "
           f"Their {what} is $\\boxed{{{ans}}}$.")
    prob = f"What is the {what} of all values of $x$ that satisfy ${_poly(coeffs)} = 0$?"
    return prob, 3 if k == 1 else 4, "Algebra", sol, ans


def _linear_system(rng: random.Random) -> Problem:
    while True:
        a1, b1, a2, b2 = (_nonzero(rng, -7, 8) for _ in range(4))
        if a1 * b2 - a2 * b1 != 0:
            break
    x, y = rng.randint(-9, 9), rng.randint(-9, 9)
    c1, c2 = a1 * x + b1 * y, a2 * x + b2 * y
    target, value = rng.choice((("x + y", x + y), ("x - y", x - y), ("xy", x * y)))
    sols = sympy.solve([sympy.Eq(a1 * _X + b1 * _Y, c1), sympy.Eq(a2 * _X + b2 * _Y, c2)], [_X, _Y])
    ans = _check(sympy.Integer(value), sympy.sympify(target.replace("xy", "x*y")).subs({_X: sols[_X], _Y: sols[_Y]}))
    det = a1 * b2 - a2 * b1
    sol = (f"By Cramer's rule the determinant is $({a1})({b2}) - ({a2})({b1}) = {det}$, so "
           f"$x = \\frac{{({c1})({b2}) - ({c2})({b1})}}{{{det}}} = {x}$ and "
           f"$y = \\frac{{({a1})({c2}) - ({a2})({c1})}}{{{det}}} = {y}$. Therefore ${target} = \\boxed{{{ans}}}$.")
    eq1, eq2 = _combo([(a1, "x"), (b1, "y")]), _combo([(a2, "x"), (b2, "y")])
    prob = f"If ${eq1} = {c1}$ and ${eq2} = {c2}$, what is the value of ${target}$?"
    return prob, 5 if max(abs(a1), abs(b1), abs(a2), abs(b2)) > 5 else 4, "Algebra", sol, ans


def _order_of_operations(rng: random.Random) -> Problem:
    a, b, c, d = rng.randint(2, 12), rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 6)
    shape = rng.randrange(3)
    if shape == 0:
        expr, value = f"{a} + {b} \\cdot {c} - {d}^2", a + b * c - d * d
        sol = f"We do powers and products first: ${a} + {b * c} - {d * d} = \\boxed{{{value}}}$."
    elif shape == 1:
        expr, value = f"({a} + {b}) \\cdot {c} - {d}", (a + b) * c - d
        sol = f"The parentheses come first: ${a + b} \\cdot {c} - {d} = {(a + b) * c} - {d} = \\boxed{{{value}}}$."
    else:
        expr, value = f"{d}^3 - {a} \\cdot {b} + {c}", d**3 - a * b + c
        sol = f"We evaluate the power and the product first: ${d**3} - {a * b} + {c} = \\boxed{{{value}}}$."
    ans = _check(sympy.Integer(value), sympy.sympify(expr.replace("\\cdot", "*").replace("^", "**")))
    return f"Compute ${expr}$.", 1, "Prealgebra", sol, ans


def _percent_of(rng: random.Random) -> Problem:
    pct = rng.choice((10, 25, 50, 15, 30, 35, 40, 60, 75, 120, 150))
    n = rng.randint(1, 40) * 20
    ans = _check(sympy.Rational(pct * n, 100), sympy.Rational(pct, 100) * n)
    sol = f"${pct}\\%$ of ${n}$ is $\\frac{{{pct}}}{{100}} \\cdot {n} = \\boxed{{{_num(ans)}}}$."
    return f"What is ${pct}\\%$ of ${n}$?", 1 if pct in (10, 25, 50) else 2, "Prealgebra", sol, ans


def _simplify_fraction(rng: random.Random) -> Problem:
    while True:
        p, q, g = rng.randint(1, 15), rng.randint(2, 16), rng.randint(2, 24)
        if math.gcd(p, q) == 1:
            break
    ans = _check(sympy.Rational(p, q), sympy.Rational(p * g, q * g))
    sol = (f"The greatest common divisor of ${p * g}$ and ${q * g}$ is ${g}$, so "
           f"$\\frac{{{p * g}}}{{{q * g}}} = \\frac{{{p * g} \\div {g}}}{{{q * g} \\div {g}}} = \\boxed{{{_num(ans)}}}$.")
    return f"Simplify $\\frac{{{p * g}}}{{{q * g}}}$.", 2 if g < 10 else 3, "Prealgebra", sol, ans


def _add_fractions(rng: random.Random) -> Problem:
    b, d = rng.sample(range(2, 10), 2)
    a, c = rng.randint(1, b - 1), rng.randint(1, d - 1)
    value = sympy.Rational(a, b) + sympy.Rational(c, d)
    ans = _check(value, sympy.sympify(f"{a}/{b} + {c}/{d}"))
    lcd = math.lcm(b, d)
    sol = (f"Using the common denominator ${lcd}$: $\\frac{{{a * lcd // b}}}{{{lcd}}} + \\frac{{{c * lcd // d}}}{{{lcd}}}"
           f" = \\frac{{{a * lcd // b + c * lcd // d}}}{{{lcd}}} = \\boxed{{{_num(ans)}}}$.")
    prob = f"Compute $\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}}$. Express your answer in simplest form."
    return prob, 2 if lcd < 20 else 3, "Prealgebra", sol, ans


def _factored(n: int) -> str:
    return " \\cdot ".join(f"{p}^{{{e}}}" if e > 1 else str(p) for p, e in sorted(sympy.factorint(n).items()))


def _gcd_lcm(rng: random.Random) -> Problem:
    g = rng.choice((2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15, 18))
    while True:
        p, q = rng.sample(range(2, 16), 2)
        if math.gcd(p, q) == 1:
            break
    a, b = g * p, g * q
    facts = f"Since ${a} = {_factored(a)}$ and ${b} = {_factored(b)}$"
    if rng.random() < 0.5:
        ans = _check(sympy.Integer(g), sympy.gcd(a, b))
        sol = f"{facts}, the common prime factors give $\\boxed{{{ans}}}$."
        prob, level = f"What is the greatest common divisor of ${a}$ and ${b}$?", 1 if max(a, b) < 100 else 2
    else:
        ans = _check(sympy.Integer(g * p * q), sympy.lcm(a, b))
        sol = f"{facts}, taking the highest power of each prime gives $\\boxed{{{ans}}}$."
        prob, level = f"What is the least common multiple of ${a}$ and ${b}$?", 2 if ans < 200 else 3
    return prob, level, "Number Theory", sol, ans


def _divisor_count(rng: random.Random) -> Problem:
    primes = sorted(rng.sample((2, 3, 5, 7, 11), rng.randint(1, 3)))
    exps = [rng.randint(1, 4) for _ in primes]
    n = math.prod(p**e for p, e in zip(primes, exps, strict=True))
    ans = _check(sympy.Integer(math.prod(e + 1 for e in exps)), sympy.divisor_count(n))
    sol = (f"Since ${n} = {_factored(n)}$, a divisor chooses each prime's exponent independently, giving "
           f"${''.join(f'({e} + 1)' for e in exps)} = \\boxed{{{ans}}}$ divisors.")
    return f"How many positive divisors does ${n}$ have?", 3 if n < 1000 else 4, "Number Theory", sol, ans


def _power_mod(rng: random.Random) -> Problem:
    while True:
        a, m = rng.randint(2, 9), rng.randint(5, 13)
        if math.gcd(a, m) == 1 and sympy.n_order(a, m) > 2:
            break
    k = rng.randint(10, 60)
    cycle = [pow(a, i, m) for i in range(1, sympy.n_order(a, m) + 1)]
    r = k % len(cycle) or len(cycle)
    ans = _check(sympy.Integer(cycle[r - 1]), pow(a, k, m))
    sol = (f"The powers ${a}^1, {a}^2, \\ldots$ modulo ${m}$ are ${', '.join(map(str, cycle))}$, repeating "
           f"with period ${len(cycle)}$. Since ${k} = {len(cycle)} \\cdot {(k - r) // len(cycle)} + {r}$, "
           f"${a}^{{{k}}} \\equiv {a}^{{{r}}} \\equiv \\boxed{{{ans}}} \\pmod{{{m}}}$.")
    prob = f"What is the remainder when ${a}^{{{k}}}$ is divided by ${m}$?"
    return prob, 4 if k < 30 else 5, "Number Theory", sol, ans


def _committee(rng: random.Random) -> Problem:
    n = rng.randint(5, 14)
    k = rng.randint(2, n - 2)
    ans = _check(sympy.Integer(math.comb(n, k)), sympy.binomial(n, k))
    sol = f"Order does not matter, so the count is $\\binom{{{n}}}{{{k}}} = \\frac{{{n}!}}{{{k}!\\,{n - k}!}} = \\boxed{{{ans}}}$."
    prob = f"In how many ways can a committee of ${k}$ people be chosen from a group of ${n}$ people?"
    return prob, 2 if n <= 8 else 3, "Counting & Probability", sol, ans


def _marbles(rng: random.Random) -> Problem:
    red, blue, green = rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 12)
    total = red + blue + green
    if rng.random() < 0.5:
        event, good, level = "red", red, 1
    else:
        event, good, level = "not blue", red + green, 2
    ans = _check(sympy.Rational(good, total), sympy.Rational(good) / total)
    sol = (f"There are ${total}$ marbles in all and ${good}$ of them are {event}, so the probability is "
           f"$\\frac{{{good}}}{{{total}}} = \\boxed{{{_num(ans)}}}$.")
    prob = (f"A bag contains ${red}$ red marbles, ${blue}$ blue marbles, and ${green}$ green marbles. One marble "
            f"is drawn at random. What is the probability that it is {event}? Express your answer as a common fraction.")
    return prob, level, "Counting & Probability", sol, ans


def _arrangements(rng: random.Random) -> Problem:
    word = rng.choice(_WORDS)
    repeats = sorted((c, n) for c, n in Counter(word).items() if n > 1)
    denom = math.prod(math.factorial(n) for _, n in repeats)
    ans = _check(sympy.Integer(math.factorial(len(word)) // denom),
                 sympy.factorial(len(word)) / sympy.Mul(*(sympy.factorial(n) for _, n in repeats)))
    prob = f"How many distinct arrangements of the letters in the word {word} are there?"
    if not repeats:
        sol = f"All ${len(word)}$ letters are different, so there are ${len(word)}! = \\boxed{{{ans}}}$ arrangements."
        return prob, 2, "Counting & Probability", sol, ans
    reps = ", ".join(f"{c} appears ${n}$ times" for c, n in repeats)
    below = " \\cdot ".join(f"{n}!" for _, n in repeats)
    sol = (f"There are ${len(word)}$ letters; {reps}. The number of arrangements is "
           f"$\\frac{{{len(word)}!}}{{{below}}} = \\boxed{{{ans}}}$.")
    return prob, 3 if len(repeats) == 1 else 4, "Counting & Probability", sol, ans


def _dice(rng: random.Random) -> Problem:
    s = rng.randint(3, 11)
    at_least = rng.random() < 0.5
    good = sum(1 for i in range(1, 7) for j in range(1, 7) if (i + j >= s if at_least else i + j == s))
    event = f"at least ${s}$" if at_least else f"${s}$"
    ans = _check(sympy.Rational(good, 36), sympy.Rational(good) / 36)
    sol = (f"Of the $36$ equally likely ordered outcomes, ${good}$ have a sum of {event}, so the probability "
           f"is $\\frac{{{good}}}{{36}} = \\boxed{{{_num(ans)}}}$.")
    prob = (f"Two fair six-sided dice are rolled. What is the probability that the sum of the two numbers "
            f"rolled is {event}? Express your answer as a common fraction.")
    return prob, 5 if at_least else 4, "Counting & Probability", sol, ans


FAMILIES: tuple[Callable[[random.Random], Problem], ...] = (
    _linear_one_side, _linear_two_sides, _evaluate_function, _quadratic_roots, _linear_system,
    _order_of_operations, _percent_of, _simplify_fraction, _add_fractions, _gcd_lcm, _divisor_count,
    _power_mod, _committee, _marbles, _arrangements, _dice,
)


def math_problem(rng: random.Random) -> dict[str, str]:
    """One sympy-verified problem as a MATH record (``problem``, ``level``, ``type``, ``solution``)."""
    problem, level, kind, solution, _ = rng.choice(FAMILIES)(rng)
    return {"problem": problem, "level": f"Level {level}", "type": kind, "solution": solution}
