"""What differs between a query and the FAQ question it is matched to, by the kinds that make near-misses.

Near-misses differ from the question they imitate in a few words of known kinds (Baidu's DuQM
categories): a number, a negation, an antonym, a time, the two sides of an asymmetric relation, or
words only one side has. `compare` names each difference ("a number: 3 vs 5") for the decision's
reason and the debug page; `features` turns them into numbers for the calibrated decision. The word
lists here are also what the hard-case generator edits with (es_faq/train/hardcases.py), so a
category means the same in training, in the decision and in `es-faq eval`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from ..config.settings import DIFFERENCE_KINDS

# Whole-token negations ("不能" is one jieba token; so is "没有").
NEGATIONS = frozenset({"不", "没", "没有", "无", "无法", "不能", "不可以", "不会", "不是", "未", "非", "别", "不用",
                       "不要", "不得", "无需", "不必", "勿", "不算", "不属于", "不构成", "不需要", "不应该",
                       "不允许", "不同意", "不影响", "不支持", "无权", "不予", "并非", "不再"})
ANTONYM_PAIRS = (
    ("提前", "推迟"), ("提前", "延期"), ("增加", "减少"), ("提高", "降低"), ("上调", "下调"), ("开通", "关闭"),
    ("开启", "关闭"), ("升级", "降级"), ("借款", "还款"), ("收入", "支出"), ("买", "卖"), ("购买", "出售"),
    ("男", "女"), ("男方", "女方"), ("丈夫", "妻子"), ("原告", "被告"), ("父亲", "母亲"), ("儿子", "女儿"),
    ("最高", "最低"), ("最多", "最少"), ("多", "少"), ("大", "小"), ("成功", "失败"), ("有效", "无效"),
    ("合法", "违法"), ("主要", "次要"), ("全部", "部分"), ("入职", "离职"), ("结婚", "离婚"), ("签订", "解除"),
    ("录用", "辞退"), ("退款", "付款"), ("存款", "取款"), ("转入", "转出"), ("充值", "提现"), ("冻结", "解冻"),
    ("同意", "拒绝"), ("允许", "禁止"), ("正式", "临时"), ("长期", "短期"), ("国内", "国外"), ("城镇", "农村"),
    ("本地", "外地"), ("自愿", "被迫"), ("故意", "过失"), ("民事", "刑事"), ("一审", "二审"), ("婚前", "婚后"),
    ("已婚", "未婚"), ("成年", "未成年"), ("贷款", "存款"), ("上涨", "下降"), ("打开", "关闭"), ("登录", "退出"),
    ("绑定", "解绑"), ("收款", "付款"), ("出租", "承租"), ("卖方", "买方"), ("借出", "借入"), ("加入", "退出"),
    ("公有", "私有"), ("个人", "单位"), ("主动", "被动"), ("新", "旧"), ("高", "低"), ("早", "晚"),
    ("可以", "必须"), ("支持", "不支持"), ("长", "短"), ("最长", "最短"), ("设置", "关闭"), ("设置", "取消"),
    ("开通", "取消"), ("开启", "取消"),
)
ANTONYMS: dict[str, frozenset[str]] = {}
for _a, _b in ANTONYM_PAIRS:
    ANTONYMS[_a] = ANTONYMS.get(_a, frozenset()) | {_b}
    ANTONYMS[_b] = ANTONYMS.get(_b, frozenset()) | {_a}
TEMPORAL_GROUPS = (
    ("今天", "明天", "昨天"), ("今年", "明年", "去年"), ("本月", "下月", "上月"), ("这个月", "下个月", "上个月"),
    ("月底", "月初", "月中"), ("年底", "年初"), ("白天", "晚上"), ("早上", "晚上"), ("周末", "工作日"),
    ("当天", "次日"), ("每月", "每年", "每天", "每周"), ("之前", "之后"), ("以前", "以后"), ("当月", "次月"),
    ("现在", "以前"), ("节假日", "工作日"), ("上午", "下午"), ("期间", "之后"),
)
TEMPORAL = frozenset(w for group in TEMPORAL_GROUPS for w in group)
# Relations whose two sides cannot be swapped ("公司欠员工工资" / "员工欠公司工资").
ASYMMETRIC = frozenset({"给", "向", "对", "欠", "被", "起诉", "告", "借给", "打", "赔偿", "嫁给", "转给", "卖给",
                        "租给", "雇佣", "辞退", "开除", "殴打", "继承", "赡养", "抚养", "委托", "代替", "替", "比",
                        "把", "让"})
KINDS = DIFFERENCE_KINDS
FEATURES = ("diff_number", "diff_negation", "diff_antonym", "diff_temporal", "diff_order", "query_only_idf",
            "text_only_idf")
# A yes-no question asked as "A不A" or "A没A" ("能不能", "会不会", "有没有", "可不可以") holds no negation; jieba cuts
# some of them ("能 / 不能") so that a negation word would show. statement() reads them as "A".
_A_NOT_A = re.compile(r"([\u3400-\u9fff])[不没]\1")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|[零一二两三四五六七八九十百千万]+(?=[个年月天日次岁倍周元块号级期%])")
_CN = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CONTENT = re.compile(r"[\u3400-\u9fffA-Za-z0-9]")
# Function words that neither side's meaning turns on; a missing "的" is not a difference.
_STOP = frozenset("的 了 吗 呢 吧 啊 呀 么 是 我 你 他 她 它 我们 请问 怎么 如何 怎样 什么 哪些 可以 能 会 要 "
                  "需要 有 在 和 与 及 或 就 都 也 还 又 这 那 这个 那个 一下 一个 请 您好 你好 想 问 知道 "
                  "该 应该 办 为什么 多少 吗？ 啥 咋 么样 亲 亲亲 麻烦 怎么办 怎么弄 怎么回事 是不是 能不能 "
                  "可不可以 要不要 时候 为啥 一般 大概 刚 刚刚 把 给 被 让 得 着 过 呀 哦 嘛".split())


@dataclass(frozen=True)
class Difference:
    kind: str  # one of KINDS
    query: str  # what the query has there ("" when only the question has it)
    text: str  # what the FAQ question has there

    def describe(self) -> str:
        return f"differs in {_SAID[self.kind]}: {self.query or '-'} vs {self.text or '-'}"


_SAID = {"number": "a number", "negation": "a negation", "antonym": "an antonym", "temporal": "a time",
         "order": "who does what to whom", "words": "words only one side has"}


@lru_cache(maxsize=4096)
def tokens(text: str) -> tuple[str, ...]:
    import jieba

    return tuple(t for t in jieba.lcut(text, HMM=False) if t.strip())


@lru_cache(maxsize=1)
def _idf() -> tuple[dict[str, float], float]:
    """jieba's general-purpose IDF table (about 270k words): stable across knowledge bases."""
    import jieba.analyse

    table = jieba.analyse.default_tfidf
    return table.idf_freq, table.median_idf


def load() -> None:
    """Read jieba's dictionary and IDF table now: about 0.75 s, once a process, which the first search that
    reads a difference would otherwise wait for (a new gunicorn worker's first searches took 1-3 s)."""
    _idf()
    tokens("校验")


def idf(word: str) -> float:
    table, median = _idf()
    return table.get(word, median)


def statement(text: str) -> str:
    """`text` with each "A不A" question form read as "A" ("小橙花能不能晚点还" -> "小橙花能晚点还")."""
    return _A_NOT_A.sub(r"\1", text)


def negations(text: str) -> list[str]:
    """The negation words of `text`, its "A不A" question forms left out."""
    return [w for w in tokens(statement(text)) if w in NEGATIONS]


def _numbers(text: str) -> list[str]:
    out = []
    for m in _NUMBER.finditer(text):
        value = m.group()
        if value[0] in _CN and len(value) == 1:
            value = str(_CN[value])
        out.append(value)
    return out


def _content(toks: tuple[str, ...]) -> set[str]:
    return {t for t in toks if t not in _STOP and t not in NEGATIONS and _CONTENT.search(t)}


def _only(words: set[str], other: str) -> set[str]:
    """Words the other text lacks, even as characters: jieba cuts "员工工资" and "员工 欠 公司 工资" apart."""
    return {w for w in words if not all(ch in other for ch in w)}


def compare(query: str, text: str) -> list[Difference]:
    """The differences of `text` (an FAQ question) from `query`, most telling kinds first."""
    q, t = tokens(query), tokens(text)
    out: list[Difference] = []
    qn, tn = _numbers(query), _numbers(text)
    if qn and tn and sorted(qn) != sorted(tn):
        out.append(Difference("number", " ".join(qn), " ".join(tn)))
    q_neg, t_neg = negations(query), negations(text)
    if len(q_neg) % 2 != len(t_neg) % 2:
        out.append(Difference("negation", " ".join(q_neg), " ".join(t_neg)))
    qs, ts = set(q), set(t)
    for w in sorted(qs - ts):
        flipped = sorted((ANTONYMS.get(w, frozenset()) & ts) - qs)
        if flipped:
            out.append(Difference("antonym", w, flipped[0]))
            break
    else:
        hidden = _hidden_antonym(query, text)
        if hidden:
            out.append(hidden)
    q_time, t_time = sorted(qs & TEMPORAL), sorted(ts & TEMPORAL)
    if q_time and t_time and q_time != t_time:
        out.append(Difference("temporal", " ".join(q_time), " ".join(t_time)))
    swapped = _swapped(query, text)
    if swapped:
        out.append(swapped)
    said = [w for d in out for side in (d.query, d.text) for w in side.split()]

    def unsaid(words: set[str]) -> set[str]:
        return {w for w in words if not any(w in s for s in said)}

    q_only, t_only = unsaid(_only(_content(q), text)), unsaid(_only(_content(t), query))
    if q_only or t_only:
        top = sorted(q_only, key=lambda w: (-idf(w), w))[:2]
        other = sorted(t_only, key=lambda w: (-idf(w), w))[:2]
        out.append(Difference("words", " ".join(top), " ".join(other)))
    return out


def _hidden_antonym(query: str, text: str) -> Difference | None:
    """An antonym the segmenter hides: jieba keeps "最少" whole but cuts "最多" into "最" and "多". Read on
    characters, where the two texts differ: a replaced stretch (with one character of context each side)
    that holds one word of an antonym pair on one side and the other word on the other side only."""
    q, t = _content_chars(query), _content_chars(text)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, q, t, autojunk=False).get_opcodes():
        if tag != "replace":
            continue
        q_part, t_part = q[max(0, i1 - 1):i2 + 1], t[max(0, j1 - 1):j2 + 1]
        for word in sorted(w for w in ANTONYMS if w in q_part and w not in t_part):
            flipped = sorted(b for b in ANTONYMS[word] if b in t_part and b not in q_part)
            if flipped:
                # A one-character change is shown with the character before it: "最少 vs 最多", not "少 vs 多".
                lead = q[i1 - 1] if i2 - i1 == 1 and j2 - j1 == 1 and i1 > 0 else ""
                return Difference("antonym", lead + q[i1:i2], lead + t[j1:j2])
    return None


def _content_chars(text: str) -> str:
    return "".join(_CONTENT.findall(text))


def _swapped(query: str, text: str, longest: int = 4) -> Difference | None:
    """An asymmetric relation whose two sides trade places ("公司欠员工" in one, "员工欠公司" in the other),
    found on characters: jieba may glue a side to what follows it ("员工工资")."""
    for rel in ASYMMETRIC:
        if rel not in query or rel not in text:
            continue
        qa, _, qb = query.partition(rel)
        ta, _, tb = text.partition(rel)
        for n in range(1, longest + 1):
            for m in range(1, longest + 1):
                a, b = qa[-n:], qb[:m]
                if len(a) == n and len(b) == m and a != b and _CONTENT.search(a) and _CONTENT.search(b) \
                        and ta.endswith(b) and tb.startswith(a):
                    return Difference("order", f"{a}{rel}{b}", f"{b}{rel}{a}")
    return None


def _share(words: set[str], of: set[str]) -> float:
    total = sum(idf(w) for w in of)
    return sum(idf(w) for w in words) / total if total else 0.0


def features(query: str, text: str, found: Sequence[Difference] | None = None) -> dict[str, float]:
    """FEATURES of a (query, question) pair: 1.0 where a kind differs, and the IDF-weighted share of each
    side's content words that the other side lacks; `found` is compare(query, text) when already read."""
    kinds = {d.kind for d in (compare(query, text) if found is None else found)}
    q, t = _content(tokens(query)), _content(tokens(text))
    q_only, t_only = _only(q, text), _only(t, query)
    return {"diff_number": float("number" in kinds), "diff_negation": float("negation" in kinds),
            "diff_antonym": float("antonym" in kinds), "diff_temporal": float("temporal" in kinds),
            "diff_order": float("order" in kinds),
            "query_only_idf": round(_share(q_only, q), 4), "text_only_idf": round(_share(t_only, t), 4)}


def explain(query: str, text: str) -> list[str]:
    """The differences as the decision's reason and the debug page say them."""
    return [d.describe() for d in compare(query, text)]

