// Unit tests of providers (issue 17): the [providers] / [provider.<id>] settings, their validation and the
// single-upstream migration, model patterns, the router's choice of provider, target and fallbacks, and
// MessageRewriter::replaceModel's byte-exact change of the model string.
#include "messagerewriter.h"
#include "provider.h"
#include "providerrouter.h"
#include "proxyconfig.h"
#include "settingsregistry.h"

#include <QFile>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

using keyrelay::MessageRewriter;
using keyrelay::ModelAlias;
using keyrelay::ProviderConfig;
using keyrelay::ProviderKind;
using keyrelay::ProviderRoute;
using keyrelay::ProviderRouter;
using keyrelay::ProxyConfig;
using keyrelay::SettingsRegistry;

using ProviderList = QList<ProviderConfig>;
Q_DECLARE_METATYPE(keyrelay::ProviderConfig)

namespace {

constexpr ProviderKind OpenAi = ProviderKind::OpenAi;
constexpr ProviderKind Anthropic = ProviderKind::Anthropic;

bool writeFile(const QString &path, const QByteArray &contents)
{
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate))
        return false;
    return file.write(contents) == contents.size();
}

QByteArray readFile(const QString &path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return {};
    return file.readAll();
}

ProviderConfig provider(const QString &id, ProviderKind kind, const QString &url,
                        const QStringList &models = {}, const QList<ModelAlias> &aliases = {},
                        const QStringList &fallback = {}, bool enabled = true)
{
    ProviderConfig config;
    config.id = id;
    config.kind = kind;
    config.baseUrl = QUrl(url);
    config.models = models;
    config.aliases = aliases;
    config.fallback = fallback;
    config.enabled = enabled;
    return config;
}

/// Every field, so that a failed comparison shows which one differs.
QString describe(const ProviderConfig &p)
{
    return QStringLiteral(
               "%1 name=%2 kind=%3 url=%4 models=[%5] aliases=[%6] fallback=[%7] proxy=%8 enabled=%9 "
               "keys=%10")
        .arg(p.id, p.name, ProviderConfig::kindName(p.kind), p.baseUrl.toString(),
             p.models.join(QLatin1Char('|')), ProviderConfig::aliasesText(p.aliases),
             p.fallback.join(QLatin1Char('|')), p.upstreamProxy,
             p.enabled ? QStringLiteral("true") : QStringLiteral("false"), p.keysFile);
}

QStringList describe(const ProviderList &list)
{
    QStringList result;
    for (const ProviderConfig &p : list)
        result.append(describe(p));
    return result;
}

/// The three providers of the issue's example, every field set (as readProviders() normalises them).
ProviderList threeProviders()
{
    ProviderConfig openai
        = provider(QStringLiteral("openai"), OpenAi, QStringLiteral("https://api.openai.com/v1"),
                   { QStringLiteral("gpt-*"), QStringLiteral("o1*"), QStringLiteral("o3*") },
                   { { QStringLiteral("smart"), QStringLiteral("gpt-4o") } }, { QStringLiteral("deepseek") });
    openai.name = QStringLiteral("OpenAI");
    openai.upstreamProxy = QStringLiteral("http://127.0.0.1:3128");
    openai.keysFile = QStringLiteral("/home/me/openai.keys");
    ProviderConfig deepseek
        = provider(QStringLiteral("deepseek"), OpenAi, QStringLiteral("https://api.deepseek.com"),
                   { QStringLiteral("deepseek-*") },
                   { { QStringLiteral("fast"), QStringLiteral("deepseek-chat") },
                     { QStringLiteral("think"), QStringLiteral("deepseek-reasoner") } },
                   { QStringLiteral("openai") }, false);
    deepseek.name = QStringLiteral("DeepSeek");
    deepseek.upstreamProxy = QStringLiteral("socks5://127.0.0.1:1080");
    ProviderConfig claude
        = provider(QStringLiteral("claude"), Anthropic, QStringLiteral("https://api.anthropic.com"),
                   { QStringLiteral("claude-*") },
                   { { QStringLiteral("sonnet"), QStringLiteral("claude-sonnet-4-0") } }, {});
    claude.name = QStringLiteral("Claude");
    claude.upstreamProxy = QStringLiteral("system");
    claude.keysFile = QStringLiteral("C:/keys/claude.txt");
    return { openai, deepseek, claude };
}

// The same three providers as an INI file; @p quoted: lists in quotes (one string) or bare (QSettings
// splits them at the commas into a QStringList).
QByteArray threeProvidersIni(bool quoted)
{
    const auto list = [quoted](const char *text) {
        return quoted ? QByteArray(QByteArray("\"") + text + "\"") : QByteArray(text);
    };
    return QByteArray("[proxy]\nupstream=https://api.openai.com\n\n[providers]\norder=")
        + list("openai, deepseek, claude")
        + "\n\n[provider.openai]\nname=OpenAI\nkind=openai\nbaseUrl=https://api.openai.com/v1\nmodels="
        + list("gpt-*, o1*, o3*") + "\naliases=" + list("smart=gpt-4o")
        + "\nfallback=deepseek\nupstreamProxy=http://127.0.0.1:3128\nenabled=true\nkeysFile=/home/me/"
          "openai.keys\n"
          "\n[provider.deepseek]\nname=DeepSeek\nkind=openai\nbaseUrl=https://"
          "api.deepseek.com\nmodels=deepseek-*\n"
          "aliases="
        + list("fast=deepseek-chat, think=deepseek-reasoner")
        + "\nfallback=openai\nupstreamProxy=socks5://127.0.0.1:1080\nenabled=false\nkeysFile=\n"
          "\n[provider.claude]\nname=Claude\nkind=Anthropic\nbaseUrl=https://api.anthropic.com/\n"
          "models=claude-*\naliases=sonnet=claude-sonnet-4-0\nfallback=\nupstreamProxy=system\n"
          "keysFile=C:/keys/claude.txt\n";
}

/// A minimal INI with [providers] order=@p order and one group per @p groups entry ("id" -> body lines).
QByteArray ini(const QByteArray &order, const QList<QPair<QByteArray, QByteArray>> &groups)
{
    QByteArray text = "[providers]\norder=" + order + "\n";
    for (const auto &group : groups)
        text += "\n[provider." + group.first + "]\n" + group.second;
    return text;
}

const QByteArray OpenAiGroup = "kind=openai\nbaseUrl=https://api.openai.com\n";
const QByteArray ClaudeGroup = "kind=anthropic\nbaseUrl=https://api.anthropic.com\n";

ProviderConfig openaiPlain()
{
    return provider(QStringLiteral("openai"), OpenAi, QStringLiteral("https://api.openai.com"));
}

ProviderConfig claudePlain()
{
    return provider(QStringLiteral("claude"), Anthropic, QStringLiteral("https://api.anthropic.com"));
}

/// Routing fixtures, by name, and the model lists their providers returned.
ProviderRouter routerFor(const QString &fixture)
{
    const auto s = [](const char *text) {
        return QString::fromUtf8(text);
    };
    const auto alias = [&](const char *name, const char *model) {
        return ModelAlias { s(name), s(model) };
    };
    if (fixture == QLatin1String("full")) {
        ProviderRouter router({
            provider(s("openai"), OpenAi, s("https://api.openai.com"), { s("gpt-*"), s("o1*"), s("*") },
                     { alias("smart", "gpt-4o") },
                     { s("deepseek"), s("claude"), s("groq"), s("openai"), s("nope"), s("openrouter"),
                       s("deepseek") }),
            provider(s("deepseek"), OpenAi, s("https://api.deepseek.com"), { s("deepseek-*") },
                     { alias("fast", "deepseek-chat"), alias("think", "deepseek-reasoner"),
                       alias("smart", "deepseek-reasoner") },
                     { s("openai") }),
            provider(s("claude"), Anthropic, s("https://api.anthropic.com"), { s("claude-*") },
                     { alias("sonnet", "claude-sonnet-4-0") }, { s("openai"), s("anthropic") }),
            provider(s("openrouter"), OpenAi, s("https://openrouter.ai/api/v1"),
                     { s("gpt-4o-mini"), s("o1*"), s("*/*") }),
            provider(s("groq"), OpenAi, s("https://api.groq.com/openai/v1"), { s("llama-*") },
                     { alias("quick", "llama-3.1-8b-instant") }, {}, false),
            provider(s("anthropic"), Anthropic, s("https://api.anthropic.com"), { s("claude-3*") },
                     { alias("sonnet", "claude-3-5-sonnet-latest") }, { s("claude") }),
        });
        router.setListedModels(s("deepseek"), { s("deepseek-coder"), s("only-here") });
        router.setListedModels(s("openai"), { s("shared-model") });
        router.setListedModels(s("openrouter"), { s("shared-model"), s("meta-llama/llama-3") });
        return router;
    }
    if (fixture == QLatin1String("plain")) { // no models, no aliases: the default decides
        return ProviderRouter({ provider(s("openai"), OpenAi, s("https://api.openai.com")),
                                provider(s("deepseek"), OpenAi, s("https://api.deepseek.com")),
                                provider(s("claude"), Anthropic, s("https://api.anthropic.com")) });
    }
    if (fixture == QLatin1String("disabled-first")) {
        return ProviderRouter(
            { provider(s("openai"), OpenAi, s("https://api.openai.com"), { s("*") }, {}, {}, false),
              provider(s("claude"), Anthropic, s("https://api.anthropic.com"), {}, {}, {}, false),
              provider(s("deepseek"), OpenAi, s("https://api.deepseek.com")),
              provider(s("anthropic"), Anthropic, s("https://api.anthropic.com")) });
    }
    if (fixture == QLatin1String("openai-only")) {
        return ProviderRouter(
            { provider(s("openai"), OpenAi, s("https://api.openai.com")),
              provider(s("claude"), Anthropic, s("https://api.anthropic.com"), {}, {}, {}, false) });
    }
    if (fixture == QLatin1String("equal-patterns")) { // the same specificity (4), b first
        return ProviderRouter({ provider(s("b"), OpenAi, s("https://b.example"), { s("gpt-*") }),
                                provider(s("a"), OpenAi, s("https://a.example"), { s("*t-4o") }) });
    }
    if (fixture == QLatin1String("equal-patterns-swapped")) { // a first
        return ProviderRouter({ provider(s("a"), OpenAi, s("https://a.example"), { s("*t-4o") }),
                                provider(s("b"), OpenAi, s("https://b.example"), { s("gpt-*") }) });
    }
    if (fixture == QLatin1String("exact-vs-pattern")) { // the exact name is listed twice: patterns decide
        return ProviderRouter({ provider(s("wild"), OpenAi, s("https://w.example"), { s("gpt-4o*") }),
                                provider(s("exact1"), OpenAi, s("https://e1.example"), { s("gpt-4o") }),
                                provider(s("exact2"), OpenAi, s("https://e2.example"), { s("gpt-4o") }) });
    }
    if (fixture == QLatin1String("migrated")) {
        ProxyConfig config;
        config.upstream = QUrl(s("https://llm.example/v1"));
        return ProviderRouter(config.effectiveProviders());
    }
    return ProviderRouter();
}

QString stepsText(const ProviderRouter &router, const ProviderRoute &route)
{
    QStringList parts;
    for (const keyrelay::RouteStep &step : route.steps)
        parts.append(router.providers().at(step.provider).id + QLatin1Char(':') + step.model);
    return parts.join(QLatin1String(", "));
}

} // namespace

class tst_Providers : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();

    void readProviders_data();
    void readProviders();
    void fullIniThroughTheRegistry_data();
    void fullIniThroughTheRegistry();
    void roundTrip_data();
    void roundTrip();
    void removingAProviderRemovesItsGroup();
    void noProvidersMigratesTheSingleUpstream_data();
    void noProvidersMigratesTheSingleUpstream();
    void validateProviders_data();
    void validateProviders();
    void parseAliases_data();
    void parseAliases();
    void parseList_data();
    void parseList();
    void validIds_data();
    void validIds();
    void patternMatches_data();
    void patternMatches();
    void patternSpecificity_data();
    void patternSpecificity();
    void patternOrder_data();
    void patternOrder();

    void isAnthropicPath_data();
    void isAnthropicPath();
    void route_data();
    void route();

    void replaceModel_data();
    void replaceModel();

private:
    QString iniPath() const { return m_dir->filePath(QStringLiteral("keyrelay.ini")); }
    std::unique_ptr<QTemporaryDir> m_dir;
};

void tst_Providers::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
}

// ---------------------------------------------------------------------------------------------------------
// Settings

void tst_Providers::readProviders_data()
{
    QTest::addColumn<QByteArray>("file");
    QTest::addColumn<ProviderList>("expected");
    QTest::addColumn<QStringList>("problems"); // each a part of the problem at the same index

    QTest::newRow("three providers, every field, lists quoted")
        << threeProvidersIni(true) << threeProviders() << QStringList();
    QTest::newRow("three providers, lists unquoted (QStringList)")
        << threeProvidersIni(false) << threeProviders() << QStringList();
    QTest::newRow("no [providers]: empty (the single upstream)")
        << QByteArray("[proxy]\nupstream=https://llm.example\n\n[provider.orphan]\n" + OpenAiGroup)
        << ProviderList() << QStringList();
    QTest::newRow("a group not in order is not read")
        << ini("openai", { { "openai", OpenAiGroup }, { "claude", ClaudeGroup } })
        << ProviderList { openaiPlain() } << QStringList();
    QTest::newRow("order: trimmed, empty entries and repeats once")
        << ini("\" claude ,, openai, claude ,\"", { { "openai", OpenAiGroup }, { "claude", ClaudeGroup } })
        << ProviderList { claudePlain(), openaiPlain() } << QStringList();
    QTest::newRow("kind omitted is openai, ANTHROPIC any case")
        << ini("a, b",
               { { "a", "baseUrl=https://a.example\n" },
                 { "b", "kind= ANTHROPIC \nbaseUrl=https://b.example\n" } })
        << ProviderList { provider(QStringLiteral("a"), OpenAi, QStringLiteral("https://a.example")),
                          provider(QStringLiteral("b"), Anthropic, QStringLiteral("https://b.example")) }
        << QStringList();
    QTest::newRow("bad kind: that provider left out")
        << ini("openai, gemini, claude",
               { { "openai", OpenAiGroup },
                 { "gemini", "kind=google\nbaseUrl=https://g.example\n" },
                 { "claude", ClaudeGroup } })
        << ProviderList { openaiPlain(), claudePlain() }
        << QStringList { QStringLiteral("[provider.gemini] kind \"google\" is not openai or anthropic") };
    QTest::newRow("bad baseUrl: ftp")
        << ini("openai, x", { { "openai", OpenAiGroup }, { "x", "baseUrl=ftp://x.example\n" } })
        << ProviderList { openaiPlain() } << QStringList { QStringLiteral("[provider.x] baseUrl: upstream") };
    QTest::newRow("bad baseUrl: with a query")
        << ini("x, openai", { { "openai", OpenAiGroup }, { "x", "baseUrl=\"https://x.example/v1?a=b\"\n" } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral(
               "[provider.x] baseUrl: upstream \"https://x.example/v1?a=b\" must be") };
    QTest::newRow("bad baseUrl: a listed id without a group")
        << ini("openai, ghost", { { "openai", OpenAiGroup } }) << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral("[provider.ghost] baseUrl: upstream \"\" is not") };
    QTest::newRow("bad id in order: upper case, dot, p, too long")
        << ini("OpenAI, my.llm, p, openai, " + QByteArray(41, 'a'), { { "openai", OpenAiGroup } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral("providers/order: \"OpenAI\" is not a provider id"),
                         QStringLiteral("providers/order: \"my.llm\" is not a provider id"),
                         QStringLiteral("providers/order: \"p\" is not a provider id"),
                         QStringLiteral(
                             "providers/order: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is not") };
    QTest::newRow("fallback naming an unknown provider or one of the other kind: dropped")
        << ini("openai, claude",
               { { "openai", QByteArray(OpenAiGroup + "fallback=nope, claude, deepseek\n") },
                 { "claude", ClaudeGroup } })
        << ProviderList { provider(QStringLiteral("openai"), OpenAi, QStringLiteral("https://api.openai.com"),
                                   {}, {}, {}),
                          claudePlain() }
        << QStringList { QStringLiteral("[provider.openai] fallback \"nope\" is not another provider"),
                         QStringLiteral("[provider.openai] fallback \"claude\" is of kind anthropic, not openai"),
                         QStringLiteral("[provider.openai] fallback \"deepseek\" is not another provider") };
    QTest::newRow("fallback to itself and to a provider left out: dropped")
        << ini("openai, bad",
               { { "openai", QByteArray(OpenAiGroup + "fallback=\"openai, bad\"\n") },
                 { "bad", "kind=x\nbaseUrl=https://b.example\n" } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral("[provider.bad] kind \"x\""),
                         QStringLiteral("[provider.openai] fallback \"openai\" is not another provider"),
                         QStringLiteral("[provider.openai] fallback \"bad\" is not another provider") };
    QTest::newRow("malformed aliases: no '='")
        << ini("openai", { { "openai", QByteArray(OpenAiGroup + "aliases=fast=gpt-4o-mini, smart\n") } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral(
               "[provider.openai] aliases: alias \"smart\" is not NAME=MODEL; no alias") };
    QTest::newRow("malformed aliases: empty model")
        << ini("openai", { { "openai", QByteArray(OpenAiGroup + "aliases=\"fast=\"\n") } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral("[provider.openai] aliases: alias \"fast=\" is not NAME=MODEL") };
    QTest::newRow("malformed aliases: empty name")
        << ini("openai", { { "openai", QByteArray(OpenAiGroup + "aliases=\"=gpt-4o\"\n") } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral("[provider.openai] aliases: alias \"=gpt-4o\" is not NAME=MODEL") };
    QTest::newRow("malformed aliases: an alias twice")
        << ini("openai", { { "openai", QByteArray(OpenAiGroup + "aliases=\"a=x, a=y\"\n") } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral("[provider.openai] aliases: alias \"a\" is given twice") };
    QTest::newRow("enabled not a boolean: enabled, with a problem")
        << ini("openai", { { "openai", QByteArray(OpenAiGroup + "enabled=maybe\n") } })
        << ProviderList { openaiPlain() }
        << QStringList { QStringLiteral("[provider.openai] enabled: not true or false") };
    QTest::newRow("enabled=0 / off") << ini("openai, claude",
                                            { { "openai", QByteArray(OpenAiGroup + "enabled=0\n") },
                                              { "claude", QByteArray(ClaudeGroup + "enabled=off\n") } })
                                     << ProviderList { provider(QStringLiteral("openai"), OpenAi,
                                                                QStringLiteral("https://api.openai.com"), {},
                                                                {}, {}, false),
                                                       provider(QStringLiteral("claude"), Anthropic,
                                                                QStringLiteral("https://api.anthropic.com"),
                                                                {}, {}, {}, false) }
                                     << QStringList();
    ProviderConfig acme = openaiPlain();
    acme.name = QStringLiteral("Acme, Inc.");
    QTest::newRow("name with an unquoted comma")
        << ini("openai", { { "openai", QByteArray(OpenAiGroup + "name=Acme, Inc.\n") } })
        << ProviderList { acme } << QStringList();
    ProviderConfig commaFile = openaiPlain();
    commaFile.keysFile = QStringLiteral("keys,v2.txt");
    QTest::newRow("keysFile with an unquoted comma")
        << ini("openai", { { "openai", QByteArray(OpenAiGroup + "keysFile=keys,v2.txt\n") } })
        << ProviderList { commaFile } << QStringList();
    QTest::newRow("bad upstreamProxy: that provider left out")
        << ini("openai, claude",
               { { "openai", QByteArray(OpenAiGroup + "upstreamProxy=ftp://proxy:21\n") },
                 { "claude", ClaudeGroup } })
        << ProviderList { claudePlain() }
        << QStringList { QStringLiteral("[provider.openai] upstreamProxy: upstream proxy must be") };
}

void tst_Providers::readProviders()
{
    QFETCH(QByteArray, file);
    QFETCH(ProviderList, expected);
    QFETCH(QStringList, problems);

    QVERIFY(writeFile(iniPath(), file));
    QSettings settings(iniPath(), QSettings::IniFormat);
    QStringList found;
    const ProviderList providers = keyrelay::readProviders(settings, &found);
    QCOMPARE(describe(providers), describe(expected));
    QVERIFY(providers == expected);
    QCOMPARE(found.size(), problems.size());
    for (int i = 0; i < problems.size(); ++i)
        QVERIFY2(found.at(i).contains(problems.at(i)),
                 qPrintable(found.at(i) + QStringLiteral(" / ") + problems.at(i)));
}

void tst_Providers::fullIniThroughTheRegistry_data()
{
    QTest::addColumn<bool>("quoted");
    QTest::newRow("lists quoted") << true;
    QTest::newRow("lists unquoted") << false;
}

void tst_Providers::fullIniThroughTheRegistry()
{
    QFETCH(bool, quoted);
    QVERIFY(writeFile(iniPath(), threeProvidersIni(quoted)));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY2(registry->problems().isEmpty(), qPrintable(registry->problems().join(QLatin1Char('\n'))));
    QCOMPARE(describe(registry->providers()), describe(threeProviders()));
    const ProxyConfig config = registry->proxyConfig();
    QVERIFY(config.providers == threeProviders());
    QVERIFY(config.effectiveProviders() == threeProviders()); // the first in order is the default
    QVERIFY2(config.validate().isEmpty(), qPrintable(config.validate().join(QLatin1Char('\n'))));
}

void tst_Providers::roundTrip_data()
{
    QTest::addColumn<ProviderList>("providers");

    QTest::newRow("three providers, every field") << threeProviders();
    ProviderConfig odd
        = provider(QStringLiteral("my_llm-2"), OpenAi, QStringLiteral("http://127.0.0.1:11434/v1"),
                   { QStringLiteral("*"), QStringLiteral("qwen2.5:7b") },
                   { { QStringLiteral("a b"), QStringLiteral("c;d") } }, {}, false);
    odd.name = QStringLiteral("Ollama, \"local\"; =ü 😀");
    odd.keysFile = QStringLiteral("/tmp/a,b/keys #1.txt");
    odd.upstreamProxy = QStringLiteral("http://user:p%40ss@proxy.local:8080");
    QTest::newRow("commas, quotes, semicolons and unicode in values") << ProviderList { odd };
    QTest::newRow("empty optional fields")
        << ProviderList { provider(QStringLiteral("x"), Anthropic, QStringLiteral("https://x.example")) };
    QTest::newRow("fallbacks among each other")
        << ProviderList { provider(QStringLiteral("a"), OpenAi, QStringLiteral("https://a.example"), {}, {},
                                   { QStringLiteral("c"), QStringLiteral("b") }),
                          provider(QStringLiteral("b"), OpenAi, QStringLiteral("https://b.example"), {}, {},
                                   { QStringLiteral("a") }),
                          provider(QStringLiteral("c"), OpenAi, QStringLiteral("https://c.example")) };
}

void tst_Providers::roundTrip()
{
    QFETCH(ProviderList, providers);
    {
        const auto writer = SettingsRegistry::openIni(iniPath());
        QSignalSpy changed(writer.get(), &SettingsRegistry::providersChanged);
        writer->setProviders(providers);
        QCOMPARE(changed.size(), 1);
        writer->setProviders(providers); // the same list again: no signal
        QCOMPARE(changed.size(), 1);
        QVERIFY(writer->providers() == providers);
        QVERIFY(writer->sync());
    }
    const auto reader = SettingsRegistry::openIni(iniPath());
    QVERIFY2(reader->problems().isEmpty(), qPrintable(reader->problems().join(QLatin1Char('\n'))));
    QCOMPARE(describe(reader->providers()), describe(providers));
    QVERIFY(reader->providers() == providers);
}

void tst_Providers::removingAProviderRemovesItsGroup()
{
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        registry->setProviders(threeProviders());
        QVERIFY(registry->sync());
    }
    QVERIFY(readFile(iniPath()).contains("[provider.deepseek]"));
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        ProviderList two = threeProviders();
        two.removeAt(1);
        two[0].fallback.clear();
        registry->setProviders(two);
        QVERIFY(registry->sync());
    }
    {
        QSettings settings(iniPath(), QSettings::IniFormat);
        QStringList groups = settings.childGroups();
        groups.sort();
        QCOMPARE(groups,
                 (QStringList { QStringLiteral("provider.claude"), QStringLiteral("provider.openai"),
                                QStringLiteral("providers") }));
        QCOMPARE(settings.value(QStringLiteral("providers/order")).toString(),
                 QStringLiteral("openai, claude"));
        QVERIFY(!readFile(iniPath()).contains("deepseek"));
    }
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QCOMPARE(registry->providers().size(), 2);
        registry->setProviders({}); // back to the single [proxy] upstream
        QVERIFY(registry->sync());
    }
    QSettings settings(iniPath(), QSettings::IniFormat);
    QVERIFY2(!settings.childGroups().contains(QStringLiteral("providers")), readFile(iniPath()).constData());
    for (const QString &group : settings.childGroups())
        QVERIFY2(!group.startsWith(QLatin1String("provider")), qPrintable(group));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY(registry->providers().isEmpty());
    QCOMPARE(registry->proxyConfig().effectiveProviders().constFirst().id, QStringLiteral("default"));
}

void tst_Providers::noProvidersMigratesTheSingleUpstream_data()
{
    QTest::addColumn<QByteArray>("file");
    QTest::addColumn<QString>("baseUrl");
    QTest::addColumn<QString>("upstreamProxy");

    QTest::newRow("upstream and upstreamProxy")
        << QByteArray(
               "[proxy]\nupstream=https://llm.example/openai/v1/\nupstreamProxy=socks5://10.0.0.1:1080\n")
        << QStringLiteral("https://llm.example/openai/v1") << QStringLiteral("socks5://10.0.0.1:1080");
    QTest::newRow("upstream only") << QByteArray("[proxy]\nupstream=http://127.0.0.1:11434\n")
                                   << QStringLiteral("http://127.0.0.1:11434") << QString();
    QTest::newRow("empty file: the default upstream")
        << QByteArray() << QStringLiteral("https://api.openai.com") << QString();
    QTest::newRow("[providers] without order is no providers")
        << QByteArray("[proxy]\nupstream=https://llm.example\n[providers]\norder=\n")
        << QStringLiteral("https://llm.example") << QString();
}

void tst_Providers::noProvidersMigratesTheSingleUpstream()
{
    QFETCH(QByteArray, file);
    QFETCH(QString, baseUrl);
    QFETCH(QString, upstreamProxy);

    QVERIFY(writeFile(iniPath(), file));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY2(registry->problems().isEmpty(), qPrintable(registry->problems().join(QLatin1Char('\n'))));
    const ProxyConfig config = registry->proxyConfig();
    QVERIFY(config.providers.isEmpty());
    const ProviderList effective = config.effectiveProviders();
    QCOMPARE(effective.size(), 1);
    const ProviderConfig &single = effective.constFirst();
    QCOMPARE(single.id, QStringLiteral("default"));
    QCOMPARE(single.displayName(), QStringLiteral("default"));
    QCOMPARE(single.kind, OpenAi);
    QCOMPARE(single.baseUrl.toString(), baseUrl);
    QCOMPARE(single.upstreamProxy, upstreamProxy);
    QVERIFY(single.enabled);
    QVERIFY(single.models.isEmpty() && single.aliases.isEmpty() && single.fallback.isEmpty());
    QVERIFY(keyrelay::validateProviders(effective).isEmpty());
    QVERIFY(config.validate().isEmpty());
}

void tst_Providers::validateProviders_data()
{
    QTest::addColumn<ProviderList>("providers");
    QTest::addColumn<QStringList>("problems"); // each a part of the problem at the same index

    const ProviderConfig a = provider(QStringLiteral("a"), OpenAi, QStringLiteral("https://a.example"));
    const ProviderConfig b = provider(QStringLiteral("b"), Anthropic, QStringLiteral("https://b.example"));
    QTest::newRow("none") << ProviderList() << QStringList();
    QTest::newRow("three from the issue") << threeProviders() << QStringList();
    QTest::newRow("duplicate id") << ProviderList { a, b, a }
                                  << QStringList { QStringLiteral("provider \"a\" is listed twice") };
    ProviderConfig self = a;
    self.fallback = { QStringLiteral("b"), QStringLiteral("a") };
    QTest::newRow("self-fallback, and one of the other kind") << ProviderList {
        self, b
    } << QStringList { QStringLiteral("provider \"a\": fallback \"b\" speaks the other API"),
                       QStringLiteral("provider \"a\" lists itself as fallback") };
    ProviderConfig unknown = a;
    unknown.fallback = { QStringLiteral("zz") };
    QTest::newRow("unknown fallback")
        << ProviderList { unknown, b }
        << QStringList { QStringLiteral("provider \"a\": fallback \"zz\" is not") };
    ProviderConfig badId = a;
    badId.id = QStringLiteral("Bad Id");
    QTest::newRow("bad id") << ProviderList { badId }
                            << QStringList { QStringLiteral("provider id \"Bad Id\" must be 1-40") };
    ProviderConfig emptyId = a;
    emptyId.id.clear();
    QTest::newRow("empty id") << ProviderList { emptyId }
                              << QStringList { QStringLiteral("provider id \"\" must") };
    ProviderConfig badUrl = a;
    badUrl.baseUrl = QUrl(QStringLiteral("file:///etc/passwd"));
    QTest::newRow("bad baseUrl") << ProviderList {
        badUrl
    } << QStringList { QStringLiteral("provider \"a\": upstream \"file:///etc/passwd\"") };
    ProviderConfig noUrl = a;
    noUrl.baseUrl = QUrl();
    QTest::newRow("no baseUrl") << ProviderList { noUrl }
                                << QStringList { QStringLiteral("provider \"a\": upstream") };
    // readProviders() leaves such a provider out on the next start, so it must not be accepted here.
    ProviderConfig badProxy = a;
    badProxy.upstreamProxy = QStringLiteral("ftp://proxy.local:21");
    QTest::newRow("bad upstreamProxy")
        << ProviderList { badProxy, b }
        << QStringList { QStringLiteral("provider \"a\": upstream proxy must be") };
    ProviderList many;
    for (int i = 0; i < 65; ++i)
        many.append(provider(QStringLiteral("p%1").arg(i), OpenAi, QStringLiteral("https://x.example")));
    QTest::newRow("65 providers") << many << QStringList { QStringLiteral("more than 64 providers") };
}

void tst_Providers::validateProviders()
{
    QFETCH(ProviderList, providers);
    QFETCH(QStringList, problems);

    const QStringList found = keyrelay::validateProviders(providers);
    QCOMPARE(found.size(), problems.size());
    for (int i = 0; i < problems.size(); ++i)
        QVERIFY2(found.at(i).contains(problems.at(i)),
                 qPrintable(found.at(i) + QStringLiteral(" / ") + problems.at(i)));

    // ProxyConfig::validate() reports the same problems.
    ProxyConfig config;
    config.providers = providers;
    const QStringList all = config.validate();
    for (const QString &problem : found)
        QVERIFY2(all.contains(problem), qPrintable(problem));
}

void tst_Providers::parseAliases_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<QString>("expected"); // aliasesText() of the result

    QTest::newRow("issue example") << QStringLiteral("fast=deepseek-chat, think=deepseek-reasoner") << true
                                   << QStringLiteral("fast=deepseek-chat, think=deepseek-reasoner");
    QTest::newRow("spaces around '='") << QStringLiteral(" fast = deepseek-chat ,think= x ") << true
                                       << QStringLiteral("fast=deepseek-chat, think=x");
    QTest::newRow("model holding '=' and '/'")
        << QStringLiteral("r=openrouter/a=b") << true << QStringLiteral("r=openrouter/a=b");
    QTest::newRow("empty") << QString() << true << QString();
    QTest::newRow("only commas") << QStringLiteral(" , ,") << true << QString();
    QTest::newRow("no '='") << QStringLiteral("fast") << false << QString();
    QTest::newRow("empty model") << QStringLiteral("fast=") << false << QString();
    QTest::newRow("empty alias") << QStringLiteral("=x") << false << QString();
    QTest::newRow("alias twice") << QStringLiteral("a=x, a=y") << false << QString();
    QTest::newRow("the same entry twice is once")
        << QStringLiteral("a=x, a=x") << true << QStringLiteral("a=x");
}

void tst_Providers::parseAliases()
{
    QFETCH(QString, text);
    QFETCH(bool, ok);
    QFETCH(QString, expected);

    QList<ModelAlias> aliases { { QStringLiteral("old"), QStringLiteral("kept") } };
    const QList<ModelAlias> before = aliases;
    QString error;
    QCOMPARE(ProviderConfig::parseAliases(text, &aliases, &error), ok);
    if (ok) {
        QCOMPARE(ProviderConfig::aliasesText(aliases), expected);
        QVERIFY(error.isEmpty());
    } else {
        QVERIFY(aliases == before); // left alone on error
        QVERIFY(!error.isEmpty());
    }
}

void tst_Providers::parseList_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QStringList>("expected");

    QTest::newRow("empty") << QString() << QStringList();
    QTest::newRow("trimmed") << QStringLiteral(" a ,b,  c")
                             << QStringList { QStringLiteral("a"), QStringLiteral("b"), QStringLiteral("c") };
    QTest::newRow("empty entries dropped")
        << QStringLiteral(",a,,b,") << QStringList { QStringLiteral("a"), QStringLiteral("b") };
    QTest::newRow("duplicates once, first place")
        << QStringLiteral("b, a, b ,a") << QStringList { QStringLiteral("b"), QStringLiteral("a") };
}

void tst_Providers::parseList()
{
    QFETCH(QString, text);
    QFETCH(QStringList, expected);
    QCOMPARE(ProviderConfig::parseList(text), expected);
}

void tst_Providers::validIds_data()
{
    QTest::addColumn<QString>("id");
    QTest::addColumn<bool>("valid");

    QTest::newRow("openai") << QStringLiteral("openai") << true;
    QTest::newRow("digits, _ and -") << QStringLiteral("0my_llm-2") << true;
    QTest::newRow("40 characters") << QString(40, QLatin1Char('a')) << true;
    QTest::newRow("41 characters") << QString(41, QLatin1Char('a')) << false;
    QTest::newRow("empty") << QString() << false;
    QTest::newRow("upper case") << QStringLiteral("OpenAI") << false;
    QTest::newRow("leading -") << QStringLiteral("-x") << false;
    QTest::newRow("dot") << QStringLiteral("a.b") << false;
    QTest::newRow("slash") << QStringLiteral("a/b") << false;
    QTest::newRow("p (the /p/ path form)") << QStringLiteral("p") << false;
    QTest::newRow("pp") << QStringLiteral("pp") << true;
}

void tst_Providers::validIds()
{
    QFETCH(QString, id);
    QFETCH(bool, valid);
    QCOMPARE(ProviderConfig::isValidId(id), valid);
}

void tst_Providers::patternMatches_data()
{
    QTest::addColumn<QString>("pattern");
    QTest::addColumn<QString>("model");
    QTest::addColumn<bool>("matches");

    QTest::newRow("* matches anything") << QStringLiteral("*") << QStringLiteral("gpt-4o") << true;
    QTest::newRow("* matches empty") << QStringLiteral("*") << QString() << true;
    QTest::newRow("** matches anything") << QStringLiteral("**") << QStringLiteral("x") << true;
    QTest::newRow("exact") << QStringLiteral("gpt-4o") << QStringLiteral("gpt-4o") << true;
    QTest::newRow("exact, longer model")
        << QStringLiteral("gpt-4o") << QStringLiteral("gpt-4o-mini") << false;
    QTest::newRow("exact, shorter model") << QStringLiteral("gpt-4o") << QStringLiteral("gpt-4") << false;
    QTest::newRow("case-sensitive") << QStringLiteral("GPT-*") << QStringLiteral("gpt-4o") << false;
    QTest::newRow("prefix*") << QStringLiteral("claude-*") << QStringLiteral("claude-3-opus") << true;
    QTest::newRow("prefix* matches the bare prefix")
        << QStringLiteral("claude-*") << QStringLiteral("claude-") << true;
    QTest::newRow("prefix* not without the prefix")
        << QStringLiteral("claude-*") << QStringLiteral("claude") << false;
    QTest::newRow("*suffix") << QStringLiteral("*-mini") << QStringLiteral("gpt-4o-mini") << true;
    QTest::newRow("*suffix, suffix twice")
        << QStringLiteral("*-mini") << QStringLiteral("o-mini-mini") << true;
    QTest::newRow("*suffix mismatch") << QStringLiteral("*-mini") << QStringLiteral("gpt-4o-minis") << false;
    QTest::newRow("a*b*c: abc") << QStringLiteral("a*b*c") << QStringLiteral("abc") << true;
    QTest::newRow("a*b*c: aXbYc") << QStringLiteral("a*b*c") << QStringLiteral("aXXbYYc") << true;
    QTest::newRow("a*b*c: backtracking abcbc") << QStringLiteral("a*b*c") << QStringLiteral("abcbc") << true;
    QTest::newRow("a*b*c: acb") << QStringLiteral("a*b*c") << QStringLiteral("acb") << false;
    QTest::newRow("a*b*c: abcd") << QStringLiteral("a*b*c") << QStringLiteral("abcd") << false;
    QTest::newRow("a*b*c: ab") << QStringLiteral("a*b*c") << QStringLiteral("ab") << false;
    QTest::newRow("*a*: backtracking") << QStringLiteral("*aab") << QStringLiteral("aaaab") << true;
    QTest::newRow("empty pattern, empty model") << QString() << QString() << true;
    QTest::newRow("empty pattern, a model") << QString() << QStringLiteral("gpt-4o") << false;
    QTest::newRow("pattern longer than model") << QStringLiteral("gpt-4o*") << QStringLiteral("gpt") << false;
    QTest::newRow("*/* with a slash") << QStringLiteral("*/*") << QStringLiteral("meta/llama") << true;
    QTest::newRow("*/* without") << QStringLiteral("*/*") << QStringLiteral("llama") << false;
    QTest::newRow("? is literal") << QStringLiteral("gpt-?") << QStringLiteral("gpt-4") << false;
    QTest::newRow("unicode") << QStringLiteral("modèle-*") << QStringLiteral("modèle-ü") << true;
}

void tst_Providers::patternMatches()
{
    QFETCH(QString, pattern);
    QFETCH(QString, model);
    QFETCH(bool, matches);
    QCOMPARE(ProviderConfig::patternMatches(pattern, model), matches);
}

void tst_Providers::patternSpecificity_data()
{
    QTest::addColumn<QString>("pattern");
    QTest::addColumn<int>("specificity");

    QTest::newRow("*") << QStringLiteral("*") << 0;
    QTest::newRow("**") << QStringLiteral("**") << 0;
    QTest::newRow("a*b*c: the characters that are not *") << QStringLiteral("a*b*c") << 3;
    QTest::newRow("*abc counts like a*b*c") << QStringLiteral("*abc") << 3;
    QTest::newRow("claude-*") << QStringLiteral("claude-*") << 7;
    QTest::newRow("exact: one more than its characters") << QStringLiteral("gpt-4o") << 7;
    QTest::newRow("empty: the exact empty name") << QString() << 1;
}

void tst_Providers::patternSpecificity()
{
    QFETCH(QString, pattern);
    QFETCH(int, specificity);
    QCOMPARE(ProviderConfig::patternSpecificity(pattern), specificity);
}

void tst_Providers::patternOrder_data()
{
    QTest::addColumn<QString>("more");
    QTest::addColumn<QString>("less");
    QTest::addColumn<QString>("model"); // matched by both

    QTest::newRow("claude-* over *") << QStringLiteral("claude-*") << QStringLiteral("*")
                                     << QStringLiteral("claude-3");
    QTest::newRow("claude-3* over claude-*")
        << QStringLiteral("claude-3*") << QStringLiteral("claude-*") << QStringLiteral("claude-3-opus");
    QTest::newRow("a*b*c over a*") << QStringLiteral("a*b*c") << QStringLiteral("a*")
                                   << QStringLiteral("aXbYc");
    QTest::newRow("exact over the same with *")
        << QStringLiteral("gpt-4o") << QStringLiteral("gpt-4o*") << QStringLiteral("gpt-4o");
    QTest::newRow("exact over g*pt-4o")
        << QStringLiteral("gpt-4o") << QStringLiteral("g*pt-4o") << QStringLiteral("gpt-4o");
    QTest::newRow("exact over gpt-4o**")
        << QStringLiteral("gpt-4o") << QStringLiteral("gpt-4o**") << QStringLiteral("gpt-4o");
}

void tst_Providers::patternOrder()
{
    QFETCH(QString, more);
    QFETCH(QString, less);
    QFETCH(QString, model);

    QVERIFY(ProviderConfig::patternMatches(more, model));
    QVERIFY(less.isEmpty() || ProviderConfig::patternMatches(less, model));
    QVERIFY2(ProviderConfig::patternSpecificity(more) > ProviderConfig::patternSpecificity(less),
             qPrintable(QStringLiteral("%1 vs %2")
                            .arg(ProviderConfig::patternSpecificity(more))
                            .arg(ProviderConfig::patternSpecificity(less))));
}

// ---------------------------------------------------------------------------------------------------------
// Routing

void tst_Providers::isAnthropicPath_data()
{
    QTest::addColumn<QByteArray>("path");
    QTest::addColumn<bool>("anthropic");

    QTest::newRow("/v1/messages") << QByteArray("/v1/messages") << true;
    QTest::newRow("/v1/messages?beta=true") << QByteArray("/v1/messages?beta=true") << true;
    QTest::newRow("/v1/messages/count_tokens") << QByteArray("/v1/messages/count_tokens") << true;
    QTest::newRow("/v1/messages/count_tokens?beta=true")
        << QByteArray("/v1/messages/count_tokens?beta=true") << true;
    QTest::newRow("/v1/messages/batches/x") << QByteArray("/v1/messages/batches/msgbatch_1") << true;
    QTest::newRow("/messages") << QByteArray("/messages") << true;
    QTest::newRow("/v1/messages/ (trailing slash)") << QByteArray("/v1/messages/") << true;
    QTest::newRow("/v1/messagesx") << QByteArray("/v1/messagesx") << false;
    QTest::newRow("/v1/chat/completions") << QByteArray("/v1/chat/completions") << false;
    QTest::newRow("chat with ?x=/v1/messages") << QByteArray("/v1/chat/completions?x=/v1/messages") << false;
    QTest::newRow("/v1/models") << QByteArray("/v1/models") << false;
    QTest::newRow("/v2/messages") << QByteArray("/v2/messages") << false;
    QTest::newRow("/v1/threads/t/messages") << QByteArray("/v1/threads/t/messages") << false;
    QTest::newRow("empty") << QByteArray() << false;
}

void tst_Providers::isAnthropicPath()
{
    QFETCH(QByteArray, path);
    QFETCH(bool, anthropic);
    QCOMPARE(ProviderRouter::isAnthropicPath(path), anthropic);
}

void tst_Providers::route_data()
{
    QTest::addColumn<QString>("fixture");
    QTest::addColumn<QByteArray>("target");
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("steps"); // "id:model, id:model": the chosen provider, then its fallbacks
    QTest::addColumn<QString>("reason");
    QTest::addColumn<QByteArray>("forwardedTarget");
    QTest::addColumn<QString>("errorCode");

    const QByteArray chat = "/v1/chat/completions";
    const QByteArray messages = "/v1/messages";
    const auto row = [&](const char *name, const char *fixture, const QByteArray &target, const char *model,
                         const char *steps, const char *reason, const QByteArray &forwarded = QByteArray()) {
        QTest::newRow(name) << QString::fromUtf8(fixture) << target << QString::fromUtf8(model)
                            << QString::fromUtf8(steps) << QString::fromUtf8(reason)
                            << (forwarded.isNull() ? target : forwarded) << QString();
    };
    const auto error = [&](const char *name, const char *fixture, const QByteArray &target, const char *model,
                           const char *code) {
        QTest::newRow(name) << QString::fromUtf8(fixture) << target << QString::fromUtf8(model) << QString()
                            << QString() << QByteArray() << QString::fromUtf8(code);
    };

    // The chosen provider is followed by its fallback list: deepseek, claude (anthropic: skipped), groq
    // (disabled), openai (itself), nope (unknown), openrouter, deepseek (again).
    const char *openaiChain = "openai:%1, deepseek:%1, openrouter:%1";

    // A model exactly one enabled provider lists.
    row("listed by setListedModels", "full", chat, "only-here", "deepseek:only-here, openai:only-here",
        "listed");
    row("listed beats a pattern of an earlier provider", "full", chat, "deepseek-coder",
        "deepseek:deepseek-coder, openai:deepseek-coder", "listed");
    row("configured exact name beats an earlier provider's pattern", "full", chat, "gpt-4o-mini",
        "openrouter:gpt-4o-mini", "listed");
    row("listed by two providers: patterns decide", "full", chat, "shared-model",
        qPrintable(QString::fromLatin1(openaiChain).arg(QStringLiteral("shared-model"))), "pattern *");
    row("listed with a slash, no provider prefix", "full", chat, "meta-llama/llama-3",
        "openrouter:meta-llama/llama-3", "listed");
    // provider/model
    row("prefix", "full", chat, "deepseek/deepseek-chat", "deepseek:deepseek-chat, openai:deepseek-chat",
        "prefix deepseek/");
    row("prefix with the provider's alias", "full", chat, "deepseek/fast",
        "deepseek:deepseek-chat, openai:fast", "prefix deepseek/");
    row("prefix of a listed model's provider", "full", chat, "openai/only-here",
        qPrintable(QString::fromLatin1(openaiChain).arg(QStringLiteral("only-here"))), "prefix openai/");
    row("prefix keeps later slashes", "full", chat, "openrouter/meta-llama/llama-3:free",
        "openrouter:meta-llama/llama-3:free", "prefix openrouter/");
    row("prefix of an anthropic provider on an openai path stays whole", "full", chat, "anthropic/claude-3",
        "openrouter:anthropic/claude-3", "pattern */*");
    row("prefix of an openai provider on the messages path stays whole", "full", messages, "openai/claude-3x",
        "claude:openai/claude-3x, anthropic:openai/claude-3x", "default");
    row("prefix of a disabled provider stays whole", "full", chat, "groq/llama-3", "openrouter:groq/llama-3",
        "pattern */*");
    row("unknown prefix stays whole", "full", chat, "nope/x", "openrouter:nope/x", "pattern */*");
    row("a leading slash is no prefix", "full", chat, "/gpt-4o", "openrouter:/gpt-4o", "pattern */*");
    // Aliases
    row("alias", "full", chat, "fast", "deepseek:deepseek-chat, openai:fast", "alias fast");
    row("alias of two providers: the first by order; fallback maps it with its own", "full", chat, "smart",
        "openai:gpt-4o, deepseek:deepseek-reasoner, openrouter:smart", "alias smart");
    row("alias on the messages path, fallback's own alias", "full", messages, "sonnet",
        "claude:claude-sonnet-4-0, anthropic:claude-3-5-sonnet-latest", "alias sonnet");
    row("an anthropic alias is not used on an openai path", "full", chat, "sonnet",
        qPrintable(QString::fromLatin1(openaiChain).arg(QStringLiteral("sonnet"))), "pattern *");
    row("a disabled provider's alias is not used", "full", chat, "quick",
        qPrintable(QString::fromLatin1(openaiChain).arg(QStringLiteral("quick"))), "pattern *");
    row("an alias target is not itself an alias", "full", chat, "deepseek-chat",
        "deepseek:deepseek-chat, openai:deepseek-chat", "pattern deepseek-*");
    // Patterns
    row("more specific pattern of a later provider", "full", chat, "deepseek-v3",
        "deepseek:deepseek-v3, openai:deepseek-v3", "pattern deepseek-*");
    row("gpt-* over * of the same provider", "full", chat, "gpt-4.1",
        qPrintable(QString::fromLatin1(openaiChain).arg(QStringLiteral("gpt-4.1"))), "pattern gpt-*");
    row("claude-3* over claude-*, messages path", "full", messages, "claude-3-opus",
        "anthropic:claude-3-opus, claude:claude-3-opus", "pattern claude-3*");
    row("claude-* on messages with a query string", "full", "/v1/messages?beta=true", "claude-opus-4",
        "claude:claude-opus-4, anthropic:claude-opus-4", "pattern claude-*");
    row("count_tokens with a query string", "full", "/v1/messages/count_tokens?beta=true", "claude-opus-4",
        "claude:claude-opus-4, anthropic:claude-opus-4", "pattern claude-*");
    row("a claude model on an openai path stays with openai kind", "full", chat, "claude-opus-4",
        qPrintable(QString::fromLatin1(openaiChain).arg(QStringLiteral("claude-opus-4"))), "pattern *");
    row("equal specificity: the earlier provider", "full", chat, "o1-mini",
        qPrintable(QString::fromLatin1(openaiChain).arg(QStringLiteral("o1-mini"))), "pattern o1*");
    row("equal specificity: b first", "equal-patterns", chat, "gpt-4o", "b:gpt-4o", "pattern gpt-*");
    row("equal specificity: a first", "equal-patterns-swapped", chat, "gpt-4o", "a:gpt-4o", "pattern *t-4o");
    row("equal specificity: a pattern only the second matches", "equal-patterns", chat, "xt-4o", "a:xt-4o",
        "pattern *t-4o");
    row("an exact name listed twice beats a pattern", "exact-vs-pattern", chat, "gpt-4o", "exact1:gpt-4o",
        "pattern gpt-4o");
    row("the pattern where the exact name does not match", "exact-vs-pattern", chat, "gpt-4o-mini",
        "wild:gpt-4o-mini", "pattern gpt-4o*");
    // The default: the first provider of the kind.
    row("default, openai path", "plain", chat, "whatever", "openai:whatever", "default");
    row("default, no model", "plain", chat, "", "openai:", "default");
    row("default, messages path", "plain", messages, "claude-x", "claude:claude-x", "default");
    row("default, messages path without /v1", "plain", "/messages", "", "claude:", "default");
    row("default, /v1/models", "plain", "/v1/models", "", "openai:", "default");
    row("default skips disabled providers", "disabled-first", chat, "gpt-4o", "deepseek:gpt-4o", "default");
    row("default skips disabled providers, messages", "disabled-first", messages, "claude-3",
        "anthropic:claude-3", "default");
    row("a disabled provider's pattern is not used", "disabled-first", chat, "x", "deepseek:x", "default");
    row("migrated single upstream: openai paths", "migrated", chat, "gpt-4o", "default:gpt-4o", "default");
    // /p/<id>/...
    row("/p/deepseek: chosen whatever the model", "full", "/p/deepseek/v1/chat/completions", "gpt-4o",
        "deepseek:gpt-4o, openai:gpt-4o", "path /p/deepseek", chat);
    row("/p/deepseek with its alias", "full", "/p/deepseek/v1/chat/completions", "fast",
        "deepseek:deepseek-chat, openai:fast", "path /p/deepseek", chat);
    row("/p/claude with a query string", "full", "/p/claude/v1/messages?beta=true", "claude-3-opus",
        "claude:claude-3-opus, anthropic:claude-3-opus", "path /p/claude", "/v1/messages?beta=true");
    row("/p/openai bare", "full", "/p/openai", "", "openai:, deepseek:, openrouter:", "path /p/openai", "/");
    row("/p/openai?query", "full", "/p/openai?x=1", "", "openai:, deepseek:, openrouter:", "path /p/openai",
        "/?x=1");
    row("/p/openrouter keeps a model's slash", "full", "/p/openrouter/v1/chat/completions",
        "anthropic/claude-3", "openrouter:anthropic/claude-3", "path /p/openrouter", chat);
    error("/p/ unknown provider", "full", "/p/nope/v1/chat/completions", "gpt-4o", "unknown_provider");
    error("/p/ wrong case", "full", "/p/OpenAI/v1/chat/completions", "gpt-4o", "unknown_provider");
    error("/p/ empty id", "full", "/p//v1/chat/completions", "gpt-4o", "unknown_provider");
    error("/p/ disabled provider", "full", "/p/groq/v1/chat/completions", "llama-3", "provider_disabled");
    // No provider of the kind.
    error("no anthropic provider", "openai-only", messages, "claude-3", "no_provider");
    error("no anthropic provider, count_tokens", "openai-only", "/v1/messages/count_tokens?beta=true", "",
          "no_provider");
    error("no enabled provider at all", "", chat, "gpt-4o", "no_provider");
}

void tst_Providers::route()
{
    QFETCH(QString, fixture);
    QFETCH(QByteArray, target);
    QFETCH(QString, model);
    QFETCH(QString, steps);
    QFETCH(QString, reason);
    QFETCH(QByteArray, forwardedTarget);
    QFETCH(QString, errorCode);

    const ProviderRouter router = routerFor(fixture);
    const ProviderRoute route = router.route(target, model);
    QCOMPARE(route.errorCode, errorCode);
    if (!errorCode.isEmpty()) {
        QVERIFY(!route.ok());
        QCOMPARE(route.errorStatus, 404);
        QVERIFY(!route.error.isEmpty());
        return;
    }
    QVERIFY(route.ok());
    QCOMPARE(route.errorStatus, 0);
    QCOMPARE(stepsText(router, route), steps);
    QCOMPARE(route.reason, reason);
    QCOMPARE(route.target, forwardedTarget);
}

// ---------------------------------------------------------------------------------------------------------
// MessageRewriter::replaceModel

void tst_Providers::replaceModel_data()
{
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QString>("model");
    QTest::addColumn<bool>("replaced");
    QTest::addColumn<QByteArray>("expected"); // the body afterwards (the same when not replaced)

    const auto yes
        = [](const char *name, const QByteArray &body, const QString &model, const QByteArray &expected) {
              QTest::newRow(name) << body << model << true << expected;
          };
    const auto no = [](const char *name, const QByteArray &body) {
        QTest::newRow(name) << body << QStringLiteral("deepseek-chat") << false << body;
    };
    const QString ds = QStringLiteral("deepseek-chat");

    yes("compact", R"({"model":"fast","messages":[]})", ds, R"({"model":"deepseek-chat","messages":[]})");
    yes("longer to shorter", R"({"model":"openrouter/meta-llama/llama-3","stream":true})",
        QStringLiteral("x"), R"({"model":"x","stream":true})");
    yes("pretty-printed, CRLF, tabs, space before ':'",
        "{\r\n  \"stream\" : true,\r\n\t\"model\"  :\t\"fast\" ,\r\n  \"messages\": [ ]\r\n}\r\n", ds,
        "{\r\n  \"stream\" : true,\r\n\t\"model\"  :\t\"deepseek-chat\" ,\r\n  \"messages\": [ ]\r\n}\r\n");
    yes("leading whitespace, model last", " \n{\"a\":{\"model\":\"in\"},\"model\":\"m\"}\n", ds,
        " \n{\"a\":{\"model\":\"in\"},\"model\":\"deepseek-chat\"}\n");
    yes("nested model and model-like strings before it untouched",
        R"({"metadata":{"model":"x"},"messages":[{"role":"user","content":"\"model\":\"fast\" {[}]"}],"model":"fast"})",
        ds,
        R"({"metadata":{"model":"x"},"messages":[{"role":"user","content":"\"model\":\"fast\" {[}]"}],"model":"deepseek-chat"})");
    yes("unicode escapes elsewhere kept as written",
        R"({"model":"fast","messages":[{"content":"caf\u00e9 \ud83d\ude00 \/ \n"}],"n":1.50e+2})", ds,
        R"({"model":"deepseek-chat","messages":[{"content":"caf\u00e9 \ud83d\ude00 \/ \n"}],"n":1.50e+2})");
    yes("raw UTF-8 elsewhere kept", "{\"content\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\",\"model\":\"fast\"}", ds,
        "{\"content\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\",\"model\":\"deepseek-chat\"}");
    yes("old value with escapes replaced whole", R"({"model":"gpt\u002d4o \"q\" \\","x":0})", ds,
        R"({"model":"deepseek-chat","x":0})");
    yes("escaped key spelling", R"({"mod\u0065l":"fast","x":"model"})", ds,
        R"({"mod\u0065l":"deepseek-chat","x":"model"})");
    yes("duplicate keys: the last wins", R"({"model":"a","x":1,"model":"b"})", ds,
        R"({"model":"a","x":1,"model":"deepseek-chat"})");
    yes("duplicate keys, escaped last", R"({"model":"a","mod\u0065l":"b"})", ds,
        R"({"model":"a","mod\u0065l":"deepseek-chat"})");
    yes("duplicate keys: first a number, last a string", R"({"model":1,"model":"b"})", ds,
        R"({"model":1,"model":"deepseek-chat"})");
    yes("new value with quotes and backslash", R"({"model":"m"})", QStringLiteral("a\"b\\c"),
        R"({"model":"a\"b\\c"})");
    yes("new value with control characters", R"({"model":"m"})", QStringLiteral("a\nb\tc"),
        R"({"model":"a\nb\tc"})");
    yes("new value with a slash", R"({"model":"m"})", QStringLiteral("anthropic/claude-3"),
        R"({"model":"anthropic/claude-3"})");
    yes("new value with unicode", R"({"model":"m"})", QStringLiteral("modèle-😀"),
        "{\"model\":\"mod\xC3\xA8le-\xF0\x9F\x98\x80\"}");
    yes("new value empty", R"({"model":"m","x":[]})", QString(), R"({"model":"","x":[]})");
    yes("new value with braces and a closing quote-brace", R"({"model":"m","x":1})", QStringLiteral("\"}"),
        R"({"model":"\"}","x":1})");

    no("model a number", R"({"model":4})");
    no("model null", R"({"model":null})");
    no("model an object", R"({"model":{"name":"fast"}})");
    no("model an array", R"({"model":["fast"]})");
    no("duplicate keys: first a string, last a number", R"({"model":"a","model":2})");
    no("no model", R"({"messages":[{"model":"fast"}]})");
    no("not an object", R"([{"model":"fast"}])");
    no("a string", R"("model")");
    no("invalid JSON: unterminated", R"({"model":"fast")");
    no("invalid JSON: trailing garbage", R"({"model":"fast"} x)");
    no("invalid JSON: single quotes", R"({'model':'fast'})");
    no("empty body", "");
}

void tst_Providers::replaceModel()
{
    QFETCH(QByteArray, body);
    QFETCH(QString, model);
    QFETCH(bool, replaced);
    QFETCH(QByteArray, expected);

    QByteArray changed = body;
    QCOMPARE(MessageRewriter::replaceModel(&changed, model), replaced);
    QCOMPARE(changed, expected);
    if (replaced) {
        // What a JSON reader sees afterwards: the new model, everything else as before.
        const QJsonObject before = QJsonDocument::fromJson(body).object();
        QJsonObject after = QJsonDocument::fromJson(changed).object();
        QCOMPARE(after.value(QLatin1String("model")).toString(), model);
        QCOMPARE(MessageRewriter::modelOf(changed), model);
        after.insert(QLatin1String("model"), before.value(QLatin1String("model")));
        QCOMPARE(after, before);
    }
}

QTEST_GUILESS_MAIN(tst_Providers)
#include "tst_providers.moc"
