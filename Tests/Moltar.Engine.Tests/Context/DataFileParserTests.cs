using Moltar.Engine.Context;
using Xunit;

namespace Moltar.Engine.Tests.Context;

public class DataFileParserTests
{
    [Fact]
    public void ReadsStringsNumbersArraysBooleansAndNestedTables()
    {
        var values = DataFileParser.Parse("""
            # project file
            @{
                Project = 'Acme Shop'   # trailing comment
                Region = "eu-west-1"
                Port = 2222; ThrottleLimit = 8
                Packages = @('app-web', 'app-worker')
                Extra = 'a', 'b'
                Enabled = $true
                Nothing = $null
                TagNames = @{ Project = 'App'; Cluster = 'Role' }
                <# block
                   comment #>
                Quote = 'it''s'
            }
            """);

        Assert.Equal("Acme Shop", values["project"]);
        Assert.Equal("eu-west-1", values["Region"]);
        Assert.Equal(2222, values["Port"]);
        Assert.Equal(8, values["ThrottleLimit"]);
        Assert.Equal(new object?[] { "app-web", "app-worker" }, values["Packages"]);
        Assert.Equal(new object?[] { "a", "b" }, values["Extra"]);
        Assert.Equal(true, values["Enabled"]);
        Assert.Null(values["Nothing"]);
        var tags = Assert.IsType<Dictionary<string, object?>>(values["TagNames"]);
        Assert.Equal("Role", tags["Cluster"]);
        Assert.Equal("it's", values["Quote"]);
    }

    [Theory]
    [InlineData("@{ Project = \"$(rm -rf /)\" }", "not expanded")]
    [InlineData("@{ Project = $env:USER }", "not allowed")]
    [InlineData("@{ Project = Get-Date }", "cannot start a value")]
    [InlineData("@{ Project = 'a'; Project = 'b' }", "appears twice")]
    [InlineData("@{ Project = 'a'", "never closed")]
    [InlineData("'just a string'", "one hashtable")]
    [InlineData("@{ Project = 'a' } extra", "unexpected text")]
    public void RefusesAnythingThatIsNotPlainData(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => DataFileParser.Parse(text, "x.psd1"));
        Assert.Contains(expected, error.Message);
        Assert.StartsWith("x.psd1, line 1", error.Message);
    }

    [Fact]
    public void ErrorsNameTheLine()
    {
        var error = Assert.Throws<FormatException>(() => DataFileParser.Parse("@{\n Project = 'a'\n Region = oops\n}", "p.psd1"));
        Assert.Contains("line 3", error.Message);
    }

    [Fact]
    public void DeepNestingIsAClearErrorNotAStackOverflow()
    {
        foreach (var open in new[] { "@{ a = ", "@(" })
        {
            string text = "@{ Project = " + string.Concat(Enumerable.Repeat(open, 100_000)) + "}";
            var error = Assert.Throws<FormatException>(() => DataFileParser.Parse(text, "deep.psd1"));
            Assert.Contains("nested deeper than 16 levels", error.Message);
        }
        Assert.NotNull(DataFileParser.Parse("@{ Project = " + string.Concat(Enumerable.Repeat("@(", 15)) + "'x'" + new string(')', 15) + " }"));
    }
}
